"""One factory for the convolutions and normalisation layers of backbone, FPN and heads.

It holds what those layers share (which norm, how many groups) and the speed switches that decide how their
training calls compute (``config.runtime``: ``xla_conv``, ``xla_group_norm``), so that the builders take one
argument instead of a row of booleans. The switches never change a value, only where it is computed.
"""
import dataclasses

import keras

from mrcnn_tf.errors import ConfigError
from mrcnn_tf.layers.conv import Conv2D
from mrcnn_tf.layers.group_norm import GroupNormalization

BN_EPSILON = 1.001e-5  # keras.applications' value, so that its ImageNet weights load unchanged
GN_EPSILON = 1e-5
NORMS = ("frozen_bn", "group_norm")


@dataclasses.dataclass(frozen=True)
class LayerFactory:
    """Makes ``Conv2D`` and norm layers.

    ``norm``: ``"frozen_bn"`` (BatchNorm in inference mode, for pre-trained weights) or ``"group_norm"``.
    ``groups``: GroupNorm's channel groups. ``xla_conv`` / ``xla_norm``: the convolutions' / GroupNorms'
    training calls compiled by XLA (:class:`~mrcnn_tf.layers.conv.Conv2D`,
    :class:`~mrcnn_tf.layers.group_norm.GroupNormalization`).
    """

    norm: str = "frozen_bn"
    groups: int = 32
    xla_conv: bool = False
    xla_norm: bool = False

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS}, got {self.norm!r}")

    def conv(self, filters, kernel_size, name, **kwargs):
        """A :class:`~mrcnn_tf.layers.conv.Conv2D` (Keras' arguments in ``kwargs``)."""
        return Conv2D(filters, kernel_size, xla=self.xla_conv, name=name, **kwargs)

    def norm_layer(self, name):
        """The backbone's norm after a convolution: ``<name>_bn`` (frozen BatchNorm) or ``<name>_gn``."""
        if self.norm == "frozen_bn":
            layer = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name + "_bn")
            layer.trainable = False  # Keras 3: a non-trainable BatchNorm also runs in inference mode
            return layer
        return GroupNormalization(xla=self.xla_norm, groups=self.groups, epsilon=GN_EPSILON, name=name + "_gn")

    def head_norm(self, name):
        """The norm of FPN and head convolutions: GroupNorm with ``group_norm`` (He et al., "Rethinking ImageNet
        Pre-training"), none (``None``) with ``frozen_bn``, as in the original FPN and heads."""
        return self.norm_layer(name) if self.norm == "group_norm" else None

    def without_xla(self):
        """The same layers with plain training calls: for the mask head, whose RoI count changes every step
        (XLA would compile a program for each new count)."""
        return dataclasses.replace(self, xla_conv=False, xla_norm=False)

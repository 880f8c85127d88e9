"""GroupNorm whose training calls can run under XLA (``ops.group_norm.group_norm_xla``)."""
import keras
import tensorflow as tf

from mrcnn_tf.ops.group_norm import group_norm_xla


@keras.saving.register_keras_serializable(package="mrcnn_tf")
class GroupNormalization(keras.layers.GroupNormalization):
    """Keras' ``GroupNormalization`` (same weights, same arithmetic); with ``xla=True`` a training call
    (``training=True``) runs :func:`~mrcnn_tf.ops.group_norm.group_norm` under XLA, which fuses its moments and
    scale-and-shift into a few passes over the activations, forward and backward (docs/performance.md for what it
    buys). All layers share one XLA function, compiled once per input shape. Inference calls stay plain: the
    exported serving graph must be XLA-free, and in-process inference compiles the whole backbone + FPN anyway
    (``runtime.xla_features``).

    It keeps Keras' class name: ``.weights.h5`` files key a layer by its class name, so the weights of runs trained
    with Keras' layer load into this one and back.
    """

    def __init__(self, xla=False, **kwargs):
        super().__init__(**kwargs)
        if xla and not (self.axis == -1 and self.scale and self.center):
            raise ValueError("GroupNormalization(xla=True) normalises the last axis with scale and center")
        self.xla = xla

    def call(self, inputs, training=None):
        if training and self.xla:
            gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)  # [C] each
            return group_norm_xla(inputs, gamma, beta, self.groups, self.epsilon)
        return super().call(inputs)

    def get_config(self):
        return {**super().get_config(), "xla": self.xla}

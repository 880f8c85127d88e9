"""Feature Pyramid Network: C2-C5 from the backbone -> P2-P6 with a common channel count.

Shape letters: ``B`` batch, ``H_l``/``W_l`` size of level ``l``, ``F`` FPN channels.
"""
import keras

from mrcnn_tf.backbone import normalization
from mrcnn_tf.layers.conv import Conv2D


class FPN(keras.layers.Layer):
    """Lateral 1x1 convs, a nearest-neighbour top-down path, 3x3 output convs, and P6 = max-pool(P5, stride 2).

    With ``norm="group_norm"`` each conv is followed by GroupNorm (He et al., "Rethinking ImageNet
    Pre-training"); with ``"frozen_bn"`` the FPN has no normalisation, as the original. ``xla_norm``: GroupNorm's
    training calls compiled by XLA; ``xla_conv``: the convolutions' training forwards compiled by XLA.
    """

    def __init__(self, channels=256, norm="frozen_bn", groups=32, xla_norm=False, xla_conv=False, **kwargs):
        super().__init__(**kwargs)
        use_gn = norm == "group_norm"
        self.lateral = [Conv2D(channels, 1, xla=xla_conv, name=f"lateral_c{i}") for i in range(2, 6)]
        self.output_convs = [Conv2D(channels, 3, padding="same", xla=xla_conv, name=f"output_p{i}")
                             for i in range(2, 6)]

        def norm_layer(name):
            return normalization(norm, name, groups, xla_norm) if use_gn else None

        self.lateral_norms = [norm_layer(f"lateral_c{i}") for i in range(2, 6)]
        self.output_norms = [norm_layer(f"output_p{i}") for i in range(2, 6)]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest")
        self.p6_pool = keras.layers.MaxPooling2D(1, strides=2)

    @staticmethod
    def _apply(conv, norm, x, training):
        x = conv(x, training=training)
        return norm(x, training=training) if norm is not None else x

    def call(self, backbone_features, training=None):
        """``[C2, C3, C4, C5]`` -> ``[P2, P3, P4, P5, P6]``, each ``[B, H_l, W_l, F]``."""
        laterals = [self._apply(c, n, x, training)
                    for c, n, x in zip(self.lateral, self.lateral_norms, backbone_features)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            merged.insert(0, lateral + self.upsample(merged[0]))
        outputs = [self._apply(c, n, x, training) for c, n, x in zip(self.output_convs, self.output_norms, merged)]
        return outputs + [self.p6_pool(outputs[-1])]

"""Feature Pyramid Network: C2-C5 from the backbone -> P2-P6 with a common channel count.

Shape letters: ``B`` batch, ``H_l``/``W_l`` size of level ``l``, ``F`` FPN channels.
"""
import keras

from mrcnn_tf.layers.factory import LayerFactory


class FPN(keras.layers.Layer):
    """Lateral 1x1 convs, a nearest-neighbour top-down path, 3x3 output convs, and P6 = max-pool(P5, stride 2).

    Each conv is followed by ``layers.head_norm``: GroupNorm with ``norm="group_norm"`` (He et al., "Rethinking
    ImageNet Pre-training"), none with ``"frozen_bn"``, as the original. ``layers``: a
    :class:`~mrcnn_tf.layers.factory.LayerFactory`.
    """

    def __init__(self, channels=256, layers=None, **kwargs):
        super().__init__(**kwargs)
        layers = layers or LayerFactory()
        self.lateral = [layers.conv(channels, 1, name=f"lateral_c{i}") for i in range(2, 6)]
        self.output_convs = [layers.conv(channels, 3, padding="same", name=f"output_p{i}") for i in range(2, 6)]
        self.lateral_norms = [layers.head_norm(f"lateral_c{i}") for i in range(2, 6)]
        self.output_norms = [layers.head_norm(f"output_p{i}") for i in range(2, 6)]
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

"""RPN head: a shared 3x3 conv, then per-anchor objectness logits and box deltas on every FPN level.

Shape letters: ``B`` batch, ``A`` anchors per location, ``N`` anchors of all levels (order of ``ops.anchors``).
"""
import keras
import tensorflow as tf

from mrcnn_tf.layers.factory import LayerFactory


class RPNHead(keras.layers.Layer):
    """Objectness logits ``[B, N]`` and deltas ``[B, N, 4]``, both float32 whatever the compute dtype.
    ``layers`` (a :class:`~mrcnn_tf.layers.factory.LayerFactory`) makes the shared 3x3 conv; a call with
    ``xla=True`` (inference only) runs the whole head as one XLA-compiled function."""

    def __init__(self, num_anchors, channels=256, layers=None, **kwargs):
        super().__init__(**kwargs)
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.num_anchors = num_anchors
        self.conv = (layers or LayerFactory()).conv(channels, 3, padding="same", activation="relu",
                                                    kernel_initializer=init, name="conv")
        self.objectness = keras.layers.Conv2D(num_anchors, 1, kernel_initializer=init, dtype="float32",
                                              name="objectness")
        self.deltas = keras.layers.Conv2D(4 * num_anchors, 1, kernel_initializer=init, dtype="float32",
                                          name="deltas")

    def call(self, features, training=None, xla=False):
        if xla:
            if training:
                raise ValueError("xla=True is for inference: training calls have runtime.xla_conv")
            return self._xla_heads(features)
        return self._heads(features, training)

    @tf.function(jit_compile=True)
    def _xla_heads(self, features):
        return self._heads(features, training=False)

    def _heads(self, features, training):
        """``[P2 .. P6]`` (``[B, H_l, W_l, F]`` each) -> logits ``[B, N]``, deltas ``[B, N, 4]``.

        The two 1x1 layers run once each on the positions of all levels, laid out as one ``[B, P, 1, F]`` map,
        instead of once per level: two convolutions and their gradients instead of ten (fewer ops)."""
        batch = tf.shape(features[0])[0]
        shared = []
        for x in features:
            x = self.conv(x, training=training)  # [B, H_l, W_l, F]
            shared.append(tf.reshape(x, [batch, x.shape[1] * x.shape[2], 1, x.shape[3]]))  # [B, H_l*W_l, 1, F]
        positions = tf.concat(shared, axis=1)  # [B, P, 1, F]: level by level, then row and column, as ops.anchors
        count = positions.shape[1] * self.num_anchors  # N, static even when the batch size is not
        logits = tf.reshape(self.objectness(positions), [batch, count])  # from [B, P, 1, A]
        deltas = tf.reshape(self.deltas(positions), [batch, count, 4])  # from [B, P, 1, 4A]
        return logits, deltas

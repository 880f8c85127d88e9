"""Mask head: four 3x3 convs of 256, a 2x transposed conv, and one mask logit map per class.

Shape letters: ``B`` batch, ``R`` RoIs, ``K`` classes, ``F`` channels, ``M`` mask side (2x the pooled side).
"""
import keras
import tensorflow as tf

from mrcnn_tf.layers.factory import LayerFactory


class MaskHead(keras.layers.Layer):
    """``[B, R, 14, 14, F]`` -> mask logits ``[B, R, 28, 28, K]`` float32.

    ``layers`` (a :class:`~mrcnn_tf.layers.factory.LayerFactory`) gives the norm after each conv; its XLA switches
    are ignored: the head runs on the step's positive RoIs, a count that changes from step to step, and XLA would
    compile a program for each new one (docs/performance.md)."""

    def __init__(self, num_classes, conv_dim=256, num_convs=4, layers=None, **kwargs):
        super().__init__(**kwargs)
        layers = (layers or LayerFactory()).without_xla()
        init = keras.initializers.HeNormal()
        self.convs = [layers.conv(conv_dim, 3, padding="same", kernel_initializer=init, name=f"conv{i + 1}")
                      for i in range(num_convs)]
        self.norms = [layers.head_norm(f"conv{i + 1}") for i in range(num_convs)]
        self.upsample = keras.layers.Conv2DTranspose(conv_dim, 2, strides=2, activation="relu",
                                                     kernel_initializer=init, name="upsample")
        self.logits = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="mask_logits")

    def call(self, pooled, training=None):
        shape = tf.shape(pooled)
        x = tf.reshape(pooled, tf.concat([[-1], shape[2:]], 0))  # [B*R, 14, 14, F]
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            x = tf.nn.relu(norm(x, training=training) if norm is not None else x)
        logits = self.logits(self.upsample(x))  # [B*R, 28, 28, K]
        return tf.reshape(logits, tf.concat([shape[:2], tf.shape(logits)[1:]], 0))

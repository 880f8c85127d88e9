"""Mask head: four 3x3 convs of 256, a 2x transposed conv, and one mask logit map per class.

Shape letters: ``B`` batch, ``R`` RoIs, ``K`` classes, ``F`` channels, ``M`` mask side (2x the pooled side).
"""
import keras
import tensorflow as tf

from mrcnn_tf.backbone import normalization


class MaskHead(keras.layers.Layer):
    """``[B, R, 14, 14, F]`` -> mask logits ``[B, R, 28, 28, K]`` float32.

    Its GroupNorm stays outside XLA (unlike backbone and FPN with ``train.xla_group_norm``): the head runs on the
    step's positive RoIs, a count that changes from step to step, and XLA would compile a program for each new one
    (about 0.9 s for GroupNorm's forward and backward, measured in a traced train step)."""

    def __init__(self, num_classes, conv_dim=256, num_convs=4, norm="frozen_bn", groups=32, **kwargs):
        super().__init__(**kwargs)
        use_gn = norm == "group_norm"
        init = keras.initializers.HeNormal()
        self.convs = [
            keras.layers.Conv2D(conv_dim, 3, padding="same", kernel_initializer=init, name=f"conv{i + 1}")
            for i in range(num_convs)
        ]
        self.norms = [normalization(norm, f"conv{i + 1}", groups) if use_gn else None
                      for i in range(num_convs)]
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

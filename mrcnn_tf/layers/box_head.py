"""Box head: two fully connected layers of 1024, then class logits and class-specific box deltas.

Shape letters: ``B`` batch, ``R`` RoIs, ``K`` classes (with background), ``F`` pooled channels.
"""
import keras
import tensorflow as tf


class BoxHead(keras.layers.Layer):
    """``[B, R, 7, 7, F]`` pooled features -> logits ``[B, R, K]`` and deltas ``[B, R, K, 4]`` (float32)."""

    def __init__(self, num_classes, fc_dim=1024, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.fc1 = keras.layers.Dense(fc_dim, activation="relu", name="fc1")
        self.fc2 = keras.layers.Dense(fc_dim, activation="relu", name="fc2")
        self.class_logits = keras.layers.Dense(
            num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01), dtype="float32",
            name="class_logits",
        )
        self.box_deltas = keras.layers.Dense(
            4 * num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), dtype="float32",
            name="box_deltas",
        )

    def call(self, pooled):
        shape = tf.shape(pooled)
        x = tf.reshape(pooled, [shape[0], shape[1], -1])  # [B, R, 7*7*F]
        x = self.fc2(self.fc1(x))
        deltas = tf.reshape(self.box_deltas(x), [shape[0], shape[1], self.num_classes, 4])
        return self.class_logits(x), deltas

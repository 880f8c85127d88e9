"""Mask head: four 3x3 convs of 256, a 2x transposed conv, and one mask logit map per class.

Shape letters: ``B`` batch, ``R`` RoIs, ``K`` classes, ``F`` channels, ``M`` mask side (2x the pooled side),
``N = B * R`` maps, ``T`` Winograd tiles of all maps (``ops.winograd``).
"""
import keras
import tensorflow as tf

from mrcnn_tf.backbone import normalization
from mrcnn_tf.ops import winograd
from mrcnn_tf.ops.group_norm import group_norm

_input_tiles_xla = tf.function(winograd.input_tiles, jit_compile=True)


@tf.function(jit_compile=True)
def _conv_tail_xla(m, bias, gamma, beta, groups, epsilon, height, width, next_tiles):
    """One Winograd convolution from its products ``m`` [16, T, F] on: the output map, its bias, GroupNorm (none when
    ``gamma`` is None) and ReLU, then the next convolution's input tiles [16, T, F] when ``next_tiles``, else the
    map [N, H, W, F]. One XLA program per shape: the map never leaves it between two convolutions."""
    x = winograd.output_map(m, height, width) + bias  # [N, H, W, F]
    if gamma is not None:
        x = group_norm(x, gamma, beta, groups, epsilon)
    x = tf.nn.relu(x)
    return winograd.input_tiles(x) if next_tiles else x


class MaskHead(keras.layers.Layer):
    """``[B, R, 14, 14, F]`` -> mask logits ``[B, R, 28, 28, K]`` float32. ``xla_norm``: GroupNorm's training
    calls compiled by XLA."""

    def __init__(self, num_classes, conv_dim=256, num_convs=4, norm="frozen_bn", groups=32, xla_norm=False,
                 **kwargs):
        super().__init__(**kwargs)
        use_gn = norm == "group_norm"
        init = keras.initializers.HeNormal()
        self.convs = [
            keras.layers.Conv2D(conv_dim, 3, padding="same", kernel_initializer=init, name=f"conv{i + 1}")
            for i in range(num_convs)
        ]
        self.norms = [normalization(norm, f"conv{i + 1}", groups, xla_norm) if use_gn else None
                      for i in range(num_convs)]
        self.upsample = keras.layers.Conv2DTranspose(conv_dim, 2, strides=2, activation="relu",
                                                     kernel_initializer=init, name="upsample")
        self.logits = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="mask_logits")

    def call(self, pooled, training=None, winograd=False):
        """``winograd``: the 3x3 convolutions by Winograd F(2x2, 3x3), their tile transforms, bias, GroupNorm and
        ReLU compiled by XLA (one compile per RoI count): for inference in float32, where the model asks for it."""
        shape = tf.shape(pooled)
        x = tf.reshape(pooled, [-1] + pooled.shape[2:].as_list())  # [B*R, 14, 14, F]
        if winograd:
            x = self._winograd_convs(x)
        else:
            for conv, norm in zip(self.convs, self.norms):
                x = conv(x)
                x = tf.nn.relu(norm(x, training=training) if norm is not None else x)
        logits = self.logits(self.upsample(x))  # [B*R, 28, 28, K]
        return tf.reshape(logits, tf.concat([shape[:2], tf.shape(logits)[1:]], 0))

    def _winograd_convs(self, x):
        """The convolutions, norms and ReLUs of ``x`` [N, H, W, F] as :meth:`call` runs them plain (to float32
        rounding), the channel mixing of each as one batched matmul [16, T, F] x [16, F, F] (TF's: XLA's is
        slower)."""
        height, width = x.shape[1], x.shape[2]
        if self.compute_dtype != "float32" or height is None or width is None:
            raise ValueError("MaskHead(winograd=True) is for float32 maps of a static size")
        tiles = _input_tiles_xla(x)  # [16, T, F]
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            products = tf.matmul(tiles, winograd.transform_kernel(tf.convert_to_tensor(conv.kernel)))  # [16, T, F]
            gamma, beta, groups, epsilon = None, None, 0, 0.0
            if norm is not None:
                gamma, beta = tf.convert_to_tensor(norm.gamma), tf.convert_to_tensor(norm.beta)
                groups, epsilon = norm.groups, norm.epsilon
            tiles = _conv_tail_xla(products, tf.convert_to_tensor(conv.bias), gamma, beta, groups, epsilon, height,
                                   width, i + 1 < len(self.convs))
        return tiles  # the last one's map [N, H, W, F]

"""Convolutions with a cheaper form than the general kernel.

Shape letters: ``N`` images or RoIs, ``H``/``W`` input size, ``C`` input channels, ``F`` output channels.
"""
import tensorflow as tf


def transposed_conv_2x2(x, kernel, bias):
    """A 2x2 transposed convolution of stride 2 (``keras.layers.Conv2DTranspose(F, 2, strides=2)``).

    With kernel size equal to stride the output windows do not overlap: output pixel ``(2i + a, 2j + b)`` is
    ``x[i, j] @ kernel[a, b].T + bias``. So it is one matmul to ``4 F`` channels and a depth-to-space, which runs
    at the CPU's matmul speed (TF's general transposed-convolution kernel ran at a third of it here).

    Args:
      x: ``[N, H, W, C]``.
      kernel: ``[2, 2, F, C]``, Keras' ``Conv2DTranspose`` layout; bias: ``[F]``.
    Returns:
      ``[N, 2H, 2W, F]`` in ``x``'s dtype.
    """
    filters = kernel.shape[2]
    weights = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [kernel.shape[3], 4 * filters])  # [C, (a, b, F)]
    y = tf.tensordot(x, tf.cast(weights, x.dtype), axes=1)  # [N, H, W, 4F]
    return tf.nn.depth_to_space(y, 2) + tf.cast(bias, x.dtype)

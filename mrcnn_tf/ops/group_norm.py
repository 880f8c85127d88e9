"""Group normalisation (Wu & He, 2018) as a pure function, and the same function compiled by XLA.

Its arithmetic is Keras' (``GroupNormalization``: the mean, then the variance in a second pass), written so that
TF's gradient of it is short: the activations are centred once, and both the variance and the output come from
the centred values. Keras takes the variance of ``x - stop_gradient(mean)`` (``tf.nn.moments``) and its output as
``x * inv + (beta - mean * inv)``, whose gradient has more terms: under XLA the 61 GroupNorms of ResNet50 + FPN took
about twice as long forward and backward (README, "GroupNorm's gradient", for what it buys).

``group_norm_xla`` is one module-level ``tf.function``: XLA compiles one program per distinct input shape, which
the 61 GroupNorm layers of ResNet50 + FPN share (a layer-bound function would compile once per layer; the mask
head's 4 stay plain, its RoI count changing from step to step).

Shape letters: ``B`` batch (or RoIs), ``C`` channels; ``groups`` splits ``C`` into groups of ``C // groups``.
"""
import tensorflow as tf


def group_norm(x, gamma, beta, groups, epsilon):
    """Normalise each group of channels of each example over its positions and channels, then scale and shift;
    Keras' ``GroupNormalization`` arithmetic (statistics in float32 whatever ``x``'s dtype).

    Args:
      x: ``[B, ..., C]`` activations (float32, float16 or bfloat16), ``C`` a multiple of ``groups``.
      gamma, beta: ``[C]`` scale and offset.
      groups: the number of channel groups.
      epsilon: added to the variance.
    Returns:
      ``[B, ..., C]`` in ``x``'s dtype.
    """
    rank, channels = x.shape.rank, x.shape[-1]
    shape = tf.shape(x)
    group_shape = tf.concat([shape[:-1], [groups, channels // groups]], axis=0)
    grouped = tf.reshape(tf.cast(x, tf.float32), group_shape)  # [B, ..., groups, C / groups]
    axes = list(range(1, rank - 1)) + [rank]  # positions and the channels of a group
    centred = grouped - tf.reduce_mean(grouped, axes, keepdims=True)  # the mean: [B, 1, .., groups, 1]
    variance = tf.reduce_mean(tf.square(centred), axes, keepdims=True)  # [B, 1, .., groups, 1]
    inv = tf.math.rsqrt(variance + epsilon) * tf.reshape(tf.cast(gamma, tf.float32), [groups, channels // groups])
    beta = tf.reshape(tf.cast(beta, tf.float32), [groups, channels // groups])
    return tf.cast(tf.reshape(centred * inv + beta, shape), x.dtype)


group_norm_xla = tf.function(group_norm, jit_compile=True)

"""Group normalisation (Wu & He, 2018) as a pure function, and the same function compiled by XLA.

The activations are grouped as ``[B, P, groups, C / groups]``, their positions flattened into one axis ``P``, so
that each group's statistics reduce two axes (1 and 3) of a 4-D array. Grouped as ``[B, H, W, groups, C / groups]``
(Keras' shape) they reduce three of a 5-D one, and XLA's programs for that were about twice as slow
(docs/performance.md, "GroupNorm").

``group_norm_xla`` is one module-level ``tf.function``: XLA compiles one program per distinct input shape, which
the 61 GroupNorm layers of ResNet50 + FPN share (a layer-bound function would compile once per layer; the mask
head's 4 stay plain, its RoI count changing from step to step).

Shape letters: ``B`` batch (or RoIs), ``P`` positions (``H * W``), ``C`` channels; ``groups`` splits ``C`` into
groups of ``C // groups``.
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
    channels = x.shape[-1]
    shape = tf.shape(x)
    group_shape = tf.stack([shape[0], tf.reduce_prod(shape[1:-1]), groups, channels // groups])
    grouped = tf.reshape(tf.cast(x, tf.float32), group_shape)  # [B, P, groups, C / groups], P positions
    mean, variance = tf.nn.moments(grouped, [1, 3], keepdims=True)  # [B, 1, groups, 1] each
    inv = tf.math.rsqrt(variance + epsilon) * tf.reshape(tf.cast(gamma, tf.float32), [groups, channels // groups])
    shift = tf.reshape(tf.cast(beta, tf.float32), [groups, channels // groups]) - mean * inv
    return tf.cast(tf.reshape(grouped * inv + shift, shape), x.dtype)


group_norm_xla = tf.function(group_norm, jit_compile=True)

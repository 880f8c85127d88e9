"""ops/group_norm.py: Keras' GroupNormalization arithmetic as a pure function, and its XLA version."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.ops.group_norm import group_norm, group_norm_xla


def _inputs(shape, seed=0):
    """Activations away from zero mean and unit variance, and a non-trivial ``[C]`` gamma and beta."""
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, shape).astype(np.float32)
    gamma, beta = rng.normal(1.0, 0.3, shape[-1]), rng.normal(0.0, 0.3, shape[-1])
    return x, gamma.astype(np.float32), beta.astype(np.float32)


def _keras(x, gamma, beta, groups, epsilon):
    layer = keras.layers.GroupNormalization(groups=groups, epsilon=epsilon, dtype=x.dtype.name)
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer(x)


@pytest.mark.parametrize("shape", [(2, 6, 5, 16), (3, 7, 8)])  # [B, H, W, C] and [B, L, C]
def test_matches_keras_group_normalization(shape):
    x, gamma, beta = _inputs(shape)
    want = _keras(tf.constant(x), gamma, beta, 4, 1e-5)
    for fn in (group_norm, group_norm_xla):
        np.testing.assert_allclose(fn(tf.constant(x), gamma, beta, 4, 1e-5), want, rtol=1e-5, atol=1e-5)


def test_each_group_is_normalised_over_its_positions_and_channels():
    x, _, _ = _inputs((2, 4, 4, 8))
    y = group_norm(tf.constant(x), tf.ones([8]), tf.zeros([8]), 2, 0.0).numpy().reshape(2, 16, 2, 4)
    np.testing.assert_allclose(y.mean(axis=(1, 3)), 0.0, atol=1e-5)  # [B, G]
    np.testing.assert_allclose(y.std(axis=(1, 3)), 1.0, atol=1e-4)


def _float64_group_norm(x, groups, epsilon):
    """The normalised ``x`` (gamma 1, beta 0) in float64, two-pass: the reference for precision."""
    grouped = x.astype(np.float64).reshape(x.shape[0], -1, groups, x.shape[-1] // groups)
    mean, variance = grouped.mean((1, 3), keepdims=True), grouped.var((1, 3), keepdims=True)
    return ((grouped - mean) / np.sqrt(variance + epsilon)).reshape(x.shape)


def test_precise_when_the_mean_is_far_from_zero():
    # tf.nn.moments takes the variance in a second pass over x - mean: no cancellation when the mean is 150
    # standard deviations from 0 (where a one-pass mean square - mean^2 in float32 is off by 1e-2 of the scale).
    x = np.random.default_rng(3).normal(300.0, 2.0, (2, 16, 16, 64)).astype(np.float32)
    want = _float64_group_norm(x, 8, 1e-5)
    for fn in (group_norm, group_norm_xla):
        np.testing.assert_allclose(fn(tf.constant(x), tf.ones([64]), tf.zeros([64]), 8, 1e-5), want, atol=1e-4)


def test_matches_keras_under_mixed_float16():
    # Keras' layer under mixed_float16: float16 activations in and out, float32 gamma, beta and statistics.
    x, gamma, beta = _inputs((2, 6, 5, 16))
    x16 = tf.constant(x * 1000.0, tf.float16)  # squares far beyond float16's range
    layer = keras.layers.GroupNormalization(groups=4, epsilon=1e-5, dtype="mixed_float16")
    layer.build(x16.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    want = layer(x16)
    for fn in (group_norm, group_norm_xla):
        got = fn(x16, gamma, beta, 4, 1e-5)
        assert got.dtype == want.dtype == tf.float16
        np.testing.assert_allclose(tf.cast(got, tf.float32), tf.cast(want, tf.float32), rtol=1e-3, atol=1e-3)


def test_a_dynamic_batch_keeps_the_static_shape():
    # The mask head's RoI count is unknown when traced: the output keeps every static dimension of the input.
    spec = tf.TensorSpec([None, 6, 5, 16], tf.float32)
    for fn in (group_norm, group_norm_xla):
        traced = tf.function(lambda x, fn=fn: fn(x, tf.ones([16]), tf.zeros([16]), 4, 1e-5), input_signature=[spec])
        assert traced.get_concrete_function().structured_outputs.shape.as_list() == [None, 6, 5, 16]


def test_bfloat16_in_and_out_statistics_in_float32():
    x, gamma, beta = _inputs((2, 6, 5, 16))
    want = group_norm(tf.constant(x), gamma, beta, 4, 1e-5)
    got = group_norm(tf.constant(x, tf.bfloat16), gamma, beta, 4, 1e-5)
    assert got.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(got, tf.float32), want, rtol=2e-2, atol=2e-2)  # bfloat16: 8 bits of mantissa


def test_no_rois_is_an_empty_result():
    # A batch of no rows (a dynamic row count, such as a step's positive RoIs, can reach 0): an empty result and
    # zero gradients, not NaN from the empty statistics.
    x, gamma, beta = tf.zeros([0, 14, 14, 16]), tf.ones([16]), tf.zeros([16])
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y = group_norm_xla(x, gamma, beta, 4, 1e-5)
        loss = tf.reduce_sum(y)
    assert y.shape == (0, 14, 14, 16)
    dx, dgamma, dbeta = tape.gradient(loss, [x, gamma, beta])
    assert dx.shape == (0, 14, 14, 16)
    assert not np.any(dgamma) and not np.any(dbeta)  # zeros, not NaN from the empty statistics


def test_xla_gradients_match():
    x, gamma, beta = (tf.constant(a) for a in _inputs((2, 6, 5, 16)))
    results = []
    for fn in (group_norm, group_norm_xla):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = fn(x, gamma, beta, 4, 1e-5)
            loss = tf.reduce_sum(y * tf.sin(y))  # a plain sum's gradient through the normalisation is 0
        results.append(tape.gradient(loss, [x, gamma, beta]))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_xla_compiles_once_per_shape():
    count = group_norm_xla.experimental_get_tracing_count
    x, gamma, beta = _inputs((1, 3, 3, 24), seed=1)  # a shape no other test uses
    group_norm_xla(x, gamma, beta, 4, 1e-5)
    before = count()
    group_norm_xla(x + 1.0, gamma * 2.0, beta, 4, 1e-5)  # other values, other layer's gamma: same program
    assert count() == before
    group_norm_xla(np.concatenate([x, x]), gamma, beta, 4, 1e-5)  # a new shape: one more
    assert count() == before + 1

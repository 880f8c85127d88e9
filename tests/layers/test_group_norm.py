"""GroupNorm: Keras' GroupNormalization, with its training calls compiled by XLA when asked."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_weights_file_loads

from mrcnn_tf.layers.group_norm import GroupNormalization

SHAPE = (2, 6, 5, 16)


def _pair(seed=0):
    """A GroupNorm with XLA and a Keras GroupNormalization with the same (non-trivial) gamma and beta."""
    ours = GroupNormalization(xla=True, groups=4, epsilon=1e-5)
    reference = keras.layers.GroupNormalization(groups=4, epsilon=1e-5)
    rng = np.random.default_rng(seed)
    for layer in (ours, reference):
        layer.build(SHAPE)
    gamma, beta = rng.normal(1.0, 0.3, SHAPE[-1]), rng.normal(0.0, 0.3, SHAPE[-1])
    for layer in (ours, reference):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return ours, reference


def _value_and_gradients(layer, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * tf.sin(y))  # not a plain sum: its gradient through the normalisation is not 0
    return [y] + tape.gradient(loss, [x, layer.gamma, layer.beta])


@pytest.mark.parametrize("training", [True, False])
def test_matches_keras_group_normalization_with_gradients(training):
    ours, reference = _pair()
    x = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, SHAPE), tf.float32)
    for got, want in zip(_value_and_gradients(ours, x, training), _value_and_gradients(reference, x, False)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def _graph_has_xla(fn, x):
    graph = fn.get_concrete_function(x).graph.as_graph_def()
    return b"_XlaMustCompile" in graph.SerializeToString()


def test_only_training_calls_with_xla_compile():
    ours, _ = _pair()
    plain = GroupNormalization(xla=False, groups=4)
    x = tf.zeros(SHAPE)
    assert _graph_has_xla(tf.function(lambda t: ours(t, training=True)), x)
    assert not _graph_has_xla(tf.function(lambda t: ours(t, training=False)), x)  # serving graphs stay XLA-free
    assert not _graph_has_xla(tf.function(lambda t: plain(t, training=True)), x)


@pytest.mark.parametrize("kwargs", [{"center": False}, {"scale": False}, {"axis": 1}])
def test_xla_needs_the_last_axis_scale_and_center(kwargs):
    with pytest.raises(ValueError, match="xla=True"):
        GroupNormalization(xla=True, groups=4, **kwargs)


def test_config_round_trip():
    layer = GroupNormalization(xla=True, groups=4, epsilon=1e-3, name="n_gn")
    copy = GroupNormalization.from_config(layer.get_config())
    assert (copy.xla, copy.groups, copy.epsilon, copy.name) == (True, 4, 1e-3, "n_gn")


def test_weights_files_of_keras_group_normalization_load(tmp_path):
    # .weights.h5 files key layers by class name: runs trained with Keras' layer must load into ours.
    def model(norm_class, **kwargs):
        inputs = keras.Input(SHAPE[1:])
        x = norm_class(groups=4, **kwargs)(keras.layers.Dense(SHAPE[-1])(inputs))
        return keras.Model(inputs, norm_class(groups=4, **kwargs)(x))

    theirs = model(keras.layers.GroupNormalization)
    for layer in theirs.layers[2:]:
        layer.gamma.assign(np.random.default_rng(2).normal(1.0, 0.3, SHAPE[-1]))
    assert_weights_file_loads(theirs, model(GroupNormalization, xla=True), tmp_path)

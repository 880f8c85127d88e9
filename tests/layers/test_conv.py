"""Conv2D: Keras' Conv2D, with the forward of its training calls compiled by XLA when asked."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_weights_file_loads

from mrcnn_tf.layers.conv import Conv2D

SHAPE = (2, 9, 9, 8)  # 8 channels: see tests/ops/test_conv.py on oneDNN's 1x1 stride-2 filter gradient


def _pair(**kwargs):
    """Our Conv2D with XLA and Keras' Conv2D with the same weights."""
    ours = Conv2D(6, xla=True, **kwargs)
    reference = keras.layers.Conv2D(6, **kwargs)
    for layer in (ours, reference):
        layer.build(SHAPE)
    reference.set_weights([np.random.default_rng(0).normal(size=w.shape) for w in reference.get_weights()])
    ours.set_weights(reference.get_weights())
    return ours, reference


def _value_and_gradients(layer, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training) if isinstance(layer, Conv2D) else layer(x)
        loss = tf.reduce_sum(y * tf.sin(y))
    return [y] + tape.gradient(loss, [x] + layer.trainable_weights)


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": 3, "padding": "same", "activation": "relu"},
    {"kernel_size": 1, "strides": 2},
    {"kernel_size": 3, "strides": 2, "use_bias": False},
])
def test_training_calls_match_keras_conv2d_with_gradients(kwargs):
    ours, reference = _pair(**kwargs)
    x = tf.constant(np.random.default_rng(1).normal(size=SHAPE), tf.float32)
    for got, want in zip(_value_and_gradients(ours, x, True), _value_and_gradients(reference, x, False)):
        # Unit-variance weights over 72 taps: gradients of 10-100, summed in another order by the patches product.
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-3)


def _graph_has_xla(fn, x):
    return b"_XlaMustCompile" in fn.get_concrete_function(x).graph.as_graph_def().SerializeToString()


def test_only_training_calls_with_xla_compile():
    ours, _ = _pair(kernel_size=3)
    plain = Conv2D(6, 3)
    x = tf.zeros(SHAPE)
    assert _graph_has_xla(tf.function(lambda t: ours(t, training=True)), x)
    assert not _graph_has_xla(tf.function(lambda t: ours(t, training=False)), x)  # serving graphs stay XLA-free
    assert not _graph_has_xla(tf.function(lambda t: plain(t, training=True)), x)


@pytest.mark.parametrize("kwargs", [{"dilation_rate": 2}, {"strides": (1, 2)}, {"groups": 2},
                                    {"data_format": "channels_first"}])
def test_xla_needs_a_plain_channels_last_convolution(kwargs):
    with pytest.raises(ValueError, match="xla=True"):
        Conv2D(4, 3, xla=True, **kwargs)


def test_config_round_trip():
    layer = Conv2D(4, 3, strides=2, xla=True, name="c")
    copy = Conv2D.from_config(layer.get_config())
    assert (copy.xla, copy.filters, copy.strides, copy.name) == (True, 4, (2, 2), "c")


def test_weights_files_of_keras_conv2d_load(tmp_path):
    # .weights.h5 files key layers by class name: runs trained with Keras' layer must load into ours.
    def model(conv_class, **kwargs):
        inputs = keras.Input(SHAPE[1:])
        return keras.Model(inputs, conv_class(3, 3, **kwargs)(conv_class(5, 1, **kwargs)(inputs)))

    theirs = model(keras.layers.Conv2D)
    theirs.set_weights([np.random.default_rng(2).normal(size=w.shape) for w in theirs.get_weights()])
    assert_weights_file_loads(theirs, model(Conv2D, xla=True), tmp_path)


def test_mixed_precision_trains_in_the_compute_dtype():
    layer = Conv2D(3, 3, padding="same", xla=True, dtype="mixed_float16")
    x = tf.random.normal(SHAPE)
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
    assert y.dtype == tf.float16 and layer.kernel.dtype == "float32"
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert [g.dtype for g in gradients] == [tf.float32, tf.float32]

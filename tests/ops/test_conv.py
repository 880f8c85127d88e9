"""transposed_conv_2x2 against Keras' Conv2DTranspose(F, 2, strides=2): values and gradients."""
import keras
import numpy as np
import tensorflow as tf

from mrcnn_tf.ops.conv import transposed_conv_2x2


def layer_and_input(channels=7, filters=6, seed=0):
    rng = np.random.default_rng(seed)
    layer = keras.layers.Conv2DTranspose(filters, 2, strides=2)
    layer.build((None, None, None, channels))
    layer.set_weights([rng.normal(size=(2, 2, filters, channels)).astype("float32"),
                       rng.normal(size=filters).astype("float32")])
    return layer, tf.constant(rng.normal(size=(3, 5, 4, channels)), tf.float32)


def test_matches_keras_conv2d_transpose():
    layer, x = layer_and_input()
    got = transposed_conv_2x2(x, layer.kernel, layer.bias)
    assert got.shape == (3, 10, 8, 6)
    np.testing.assert_allclose(got, layer(x), atol=1e-5)


def test_gradients_match_keras():
    layer, x = layer_and_input(seed=1)
    weights = tf.constant(np.random.default_rng(2).normal(size=(3, 10, 8, 6)), tf.float32)
    grads = []
    for fn in (layer, lambda x: transposed_conv_2x2(x, layer.kernel, layer.bias)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(fn(x) * weights)
        grads.append(tape.gradient(loss, [x, layer.kernel, layer.bias]))
    for want, got in zip(*grads):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_keeps_the_input_dtype():
    layer, x = layer_and_input()
    got = transposed_conv_2x2(tf.cast(x, tf.float16), layer.kernel, layer.bias)
    assert got.dtype == tf.float16
    np.testing.assert_allclose(got.numpy().astype("float32"), layer(x), atol=0.05)

"""ops/winograd.py: the same convolution as tf.nn.conv2d, forward and backward, for even and odd map sizes."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.ops import winograd


@pytest.mark.parametrize("shape", [(2, 14, 14, 8), (1, 7, 10, 3), (3, 1, 1, 4), (1, 2, 5, 5)])
def test_conv3x3_matches_conv2d_same(shape):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, shape[-1], 6)), tf.float32)
    expected = tf.nn.conv2d(x, kernel, 1, "SAME")
    np.testing.assert_allclose(winograd.conv3x3(x, kernel), expected, rtol=1e-5, atol=1e-5)


def test_conv3x3_gradients_match_conv2d():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 6, 5, 4)), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, 4, 3)), tf.float32)
    upstream = tf.constant(rng.normal(size=(2, 6, 5, 3)), tf.float32)

    def gradients(conv):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(conv(x, kernel) * upstream)
        return tape.gradient(loss, [x, kernel])

    ours = gradients(winograd.conv3x3)
    theirs = gradients(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"))
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_kernel_transform_of_a_centre_tap():
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1] = 1.0  # the identity filter: G's middle column, (0, .5, -.5, 0), on both axes
    u = winograd.transform_kernel(tf.constant(kernel)).numpy().reshape(4, 4)
    column = np.array([0.0, 0.5, -0.5, 0.0])
    np.testing.assert_allclose(u, np.outer(column, column))

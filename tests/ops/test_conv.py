"""ops/conv.py: ``tf.nn.conv2d`` with its forward compiled by XLA and its gradients TF's own kernels."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf.ops import conv as conv_ops


def _value_and_gradients(conv, x, kernel, strides, padding):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = conv(x, kernel, strides, padding)
        loss = tf.reduce_sum(y * tf.sin(y))  # not a plain sum: dy varies over the output
    return [y] + tape.gradient(loss, [x, kernel])


@pytest.mark.parametrize("side, k, strides, padding", [
    (9, 3, 1, "SAME"), (8, 5, 1, "SAME"), (9, 3, 1, "VALID"), (8, 1, 2, "SAME"), (9, 1, 2, "VALID"),
    (14, 7, 2, "VALID"), (7, 3, 2, "SAME"),
])
def test_matches_tf_conv2d_with_gradients(side, k, strides, padding):
    rng = np.random.default_rng(0)
    # 8 input channels: TF 2.21's oneDNN filter gradient of 1x1 stride-2 convolutions is wrong with 4 (batch 2), 5 or
    # 7 of them (see below), and both sides of this comparison use that kernel.
    x = tf.constant(rng.normal(size=(2, side, side, 8)), tf.float32)
    kernel = tf.constant(rng.normal(size=(k, k, 8, 6)) / k, tf.float32)
    want = _value_and_gradients(tf.nn.conv2d, x, kernel, strides, padding)
    got = _value_and_gradients(conv_ops.conv2d, x, kernel, strides, padding)
    for name, g, w in zip(("output", "input gradient", "kernel gradient"), got, want):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


# The backbone's 1x1 stride-2 convolutions at 256 px (input side, channels, filters): TF's kernel's filter gradient.
BACKBONE_STRIDED_1X1 = [(64, 256, 128), (64, 256, 512), (32, 512, 256), (32, 512, 1024), (16, 1024, 512),
                        (16, 1024, 2048)]


@pytest.mark.parametrize("side, channels, filters", BACKBONE_STRIDED_1X1)
def test_strided_1x1_filter_gradients_of_the_backbone_match_numpy(side, channels, filters):
    """TF 2.21's oneDNN ``Conv2DBackpropFilter`` of a 1x1 stride-2 convolution gives wrong values for some small
    shapes (5 or 7 input channels; 4 with a batch of 2; once a heap corruption), found by this file's test above:
    the backbone's own shapes are checked against an independent product, so that a TF or oneDNN update cannot
    break them silently."""
    rng = np.random.default_rng(channels + filters)
    x = tf.constant(rng.normal(size=(1, side, side, channels)), tf.float32)
    kernel = tf.constant(rng.normal(size=(1, 1, channels, filters)) / np.sqrt(channels), tf.float32)
    upstream = rng.normal(size=(1, side // 2, side // 2, filters)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        y = conv_ops.conv2d(x, kernel, 2, "VALID")
    got = tape.gradient(y, kernel, output_gradients=tf.constant(upstream)).numpy()[0, 0]
    want = np.einsum("bhwc,bhwf->cf", x.numpy()[:, ::2, ::2], upstream)  # the strided samples times dy
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def _ops_of(fn, *args):
    graph = fn.get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}, graph.as_graph_def().SerializeToString()


@pytest.mark.parametrize("k, strides, plain_gradients", [
    (3, 1, {"Conv2DBackpropInput"}),  # the filter gradient: patches @ dy under XLA
    (1, 1, {"Conv2DBackpropInput", "Conv2DBackpropFilter"}),
    (3, 2, {"Conv2DBackpropInput", "Conv2DBackpropFilter"}),
])
def test_forward_under_xla_and_which_gradients_outside(k, strides, plain_gradients):
    x, kernel = tf.random.normal([1, 6, 6, 4]), tf.random.normal([k, k, 4, 4])

    @tf.function
    def step(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch(kernel)
            loss = tf.reduce_sum(conv_ops.conv2d(x, kernel, strides, "SAME"))
        return tape.gradient(loss, kernel)

    types, serialized = _ops_of(step, x, kernel)
    assert b"_XlaMustCompile" in serialized  # the forward: an XLA-compiled function call
    assert "Conv2D" not in types  # no plain forward convolution beside it
    assert types & {"Conv2DBackpropInput", "Conv2DBackpropFilter"} == plain_gradients


def test_same_filter_gradient_is_the_patches_times_the_output_gradient():
    rng = np.random.default_rng(2)
    x, dy = rng.normal(size=(2, 5, 4, 3)), rng.normal(size=(2, 5, 4, 2))
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    want = np.einsum("bhwc,bhwf->cf", padded[:, 2:7, 0:4], dy)  # kernel row 2, column 0: x[h + 1, w - 1]
    got = conv_ops.same_filter_gradient(tf.constant(x, tf.float32), tf.constant(dy, tf.float32), 3)
    assert got.shape == (3, 3, 3, 2)
    np.testing.assert_allclose(got[2, 0].numpy(), want, rtol=1e-5, atol=1e-5)


def test_float16_in_float16_out_with_its_gradients():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(1, 12, 12, 16)), tf.float16)
    kernel = tf.constant(rng.normal(size=(3, 3, 16, 8)) / 12, tf.float16)
    got = _value_and_gradients(conv_ops.conv2d, x, kernel, 1, "SAME")
    want = _value_and_gradients(tf.nn.conv2d, tf.cast(x, tf.float32), tf.cast(kernel, tf.float32), 1, "SAME")
    for name, g, w in zip(("output", "input gradient", "kernel gradient"), got, want):
        assert g.dtype == tf.float16, name
        scale = float(tf.reduce_max(tf.abs(w)))
        np.testing.assert_allclose(tf.cast(g, tf.float32).numpy() / scale, w.numpy() / scale, atol=2e-3,
                                   err_msg=name)


def test_rejects_an_unknown_padding():
    with pytest.raises(ValueError, match="padding"):
        conv_ops.conv2d(tf.zeros([1, 4, 4, 1]), tf.zeros([1, 1, 1, 1]), 1, "same")

"""benchmarks/conv_ops.py: the convolutions it times are the model's, and each kernel computes the same thing."""
import numpy as np
import pytest
import tensorflow as tf
from conftest import load_benchmark, tiny_config

from mrcnn_tf.layers.conv import Conv2D
from mrcnn_tf.model import build_model
from mrcnn_tf.ops import conv as conv_ops


@pytest.fixture(scope="module")
def conv_ops_script():
    return load_benchmark("conv_ops")


def test_lists_every_convolution_that_train_xla_conv_covers(conv_ops_script):
    # At 64 px with 256 FPN channels: the same layers as the model's backbone, FPN and RPN head.
    listed = conv_ops_script.model_convolutions(64)
    model = build_model(tiny_config(backbone={"fpn_channels": 256, "group_norm_groups": 8}))
    covered = [layer for layer in model._flatten_layers() if isinstance(layer, Conv2D)]
    rpn_levels = len(model.config.anchors.strides)
    assert len(listed) == len(covered) + rpn_levels - 1  # the RPN's shared conv runs on every level
    stem = next(c for c in listed if c[0] == "conv1_conv")
    assert stem[1:] == ((1, 70, 70, 3), 7, 64, 2, "VALID")
    assert ("rpn_4", (1, 16, 16, 256), 3, 256, 1, "SAME") in listed


def test_the_kernels_it_times_agree(conv_ops_script):
    parts = conv_ops_script.kernels((1, 6, 6, 4), 3, 5, 1, "SAME")
    (forward, forward_args), (_, (x, dy)) = parts["forward"], parts["filter_gradient"]
    with tf.GradientTape() as tape:
        tape.watch(forward_args[1])
        y = forward(*forward_args)
        loss = tf.reduce_sum(y * dy)
    by_tf = parts["filter_gradient"][0](x, dy).numpy()
    np.testing.assert_allclose(by_tf, tape.gradient(loss, forward_args[1]).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv_ops.same_filter_gradient(x, dy, 3).numpy(), by_tf, rtol=1e-4, atol=1e-4)
    times = conv_ops_script.time_convolution((1, 6, 6, 4), 3, 5, 1, "SAME", steps=1)
    assert set(times) == {f"{part}_{way}" for part in ("forward", "input_gradient", "filter_gradient")
                          for way in ("tf", "xla")} | {"filter_gradient_patches"}

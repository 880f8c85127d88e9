"""The convolutions of a train step one by one: which kernel is fastest for each part of each convolution.

    python benchmarks/conv_ops.py [--steps 3] [--image-size 256]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/conv_ops.py     # TF's Eigen kernels instead of oneDNN's

Times (median ms after two warm-up calls, each in a tf.function) the forward pass, the input gradient and the
filter gradient of every convolution of ResNet50 + FPN + the RPN head's shared conv (on each level), at their
training shapes (batch 1), three ways: TF's own ops outside XLA (oneDNN's or Eigen's kernels, as TF is set up),
the same ops XLA-compiled, and the filter gradient of the 3x3 stride-1 ones as ``mrcnn_tf.ops.conv``'s
patches-times-gradient matrix product. Prints a table summed by kernel shape to stderr and one JSON line.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import speed  # noqa: E402
from mrcnn_tf.backbone import build_resnet50  # noqa: E402
from mrcnn_tf.ops import conv as conv_ops  # noqa: E402

FPN_INPUTS = ((4, 256), (8, 512), (16, 1024), (32, 2048))  # (stride, channels) of C2-C5


def model_convolutions(image_size):
    """``(name, [1, H, W, C], k, F, stride, padding)`` of every convolution of backbone, FPN and RPN head."""
    convs = []
    for layer in build_resnet50(image_size).layers:
        if isinstance(layer, keras.layers.Conv2D):
            shape = (1,) + tuple(layer.input.shape[1:])
            convs.append((layer.name, shape, layer.kernel_size[0], layer.filters, layer.strides[0],
                          layer.padding.upper()))
    for stride, channels in FPN_INPUTS:
        side = image_size // stride
        convs.append((f"fpn_lateral_{stride}", (1, side, side, channels), 1, 256, 1, "SAME"))
        convs.append((f"fpn_output_{stride}", (1, side, side, 256), 3, 256, 1, "SAME"))
    for stride in (4, 8, 16, 32, 64):
        side = image_size // stride
        convs.append((f"rpn_{stride}", (1, side, side, 256), 3, 256, 1, "SAME"))
    return convs


def kernels(shape, k, filters, stride, padding):
    """name -> (function, args) of the forward pass and both gradients of one convolution."""
    x, kernel = tf.random.normal(shape), tf.random.normal([k, k, shape[-1], filters])
    dy = tf.random.normal(tf.nn.conv2d(x, kernel, stride, padding).shape)
    step = [1, stride, stride, 1]

    def forward(x, kernel):
        return tf.nn.conv2d(x, kernel, stride, padding)

    def input_gradient(dy, kernel):
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=shape, filter=kernel, out_backprop=dy, strides=step,
                                              padding=padding)

    def filter_gradient(x, dy):
        return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=[k, k, shape[-1], filters], out_backprop=dy,
                                               strides=step, padding=padding)

    return {"forward": (forward, (x, kernel)), "input_gradient": (input_gradient, (dy, kernel)),
            "filter_gradient": (filter_gradient, (x, dy))}


def time_convolution(shape, k, filters, stride, padding, steps):
    """ms of each part of one convolution: plain TF op, under XLA and (3x3 stride 1) by patches."""
    times, parts = {}, kernels(shape, k, filters, stride, padding)
    for part, (fn, args) in parts.items():
        for way, jit in (("tf", False), ("xla", True)):
            compiled = tf.function(fn, jit_compile=jit)
            times[f"{part}_{way}"] = speed.median_ms(lambda: compiled(*args).numpy(), steps)
    if k > 1 and stride == 1 and padding == "SAME":
        x, dy = parts["filter_gradient"][1]
        times["filter_gradient_patches"] = speed.median_ms(
            lambda: conv_ops.same_filter_gradient(x, dy, k).numpy(), steps)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--image-size", type=int, default=256)
    args = p.parse_args()
    totals = {}  # kernel shape -> column -> ms
    for name, shape, k, filters, stride, padding in model_convolutions(args.image_size):
        group = totals.setdefault(f"{k}x{k} stride {stride}", {})
        for column, ms in time_convolution(shape, k, filters, stride, padding, args.steps).items():
            group[column] = group.get(column, 0.0) + ms
    everything = {}
    for group in totals.values():
        for column, ms in group.items():
            everything[column] = everything.get(column, 0.0) + ms
    totals["all"] = everything
    for group, columns in totals.items():
        print(f"{group:14s} " + "  ".join(f"{c} {ms:7.1f}" for c, ms in sorted(columns.items())), file=sys.stderr)
    print(json.dumps({"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "image_size": args.image_size,
                      "ms": {g: {c: round(ms, 1) for c, ms in cols.items()} for g, cols in totals.items()}}))


if __name__ == "__main__":
    main()

"""Single kernels of the model against this CPU's own matmul speed: where TensorFlow falls short of the machine.

    python benchmarks/kernels.py [--steps 5]
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/kernels.py     # the same with TF's Eigen kernels instead of oneDNN

Times (median ms after two warm-up calls, each in a tf.function) at torchvision's benchmark sizes: the box head's
first matmul on 512 RoIs (with numpy's matmul of the same size beside it), a 3x3 convolution of 256 channels on one
64x64 map (P2 of a 256-px image), RoIAlign of 1000 proposals (7x7) and of 100 detections (14x14) over P2-P5 by
gather (plain and XLA-compiled) and by crop_and_resize, RoIAlign of 512 sampled RoIs forward and feature gradient as
the train step runs it (all under XLA, or crop_and_resize forward and XLA gradient), the box head on 1000 proposals
and the mask head on 100 detections, with its parts, and one of its 3x3 convolutions direct and by Winograd
F(2x2, 3x3) (``mrcnn_tf.ops.winograd``; each also XLA-compiled). Prints one JSON line.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import speed  # noqa: E402
from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.layers.box_head import BoxHead  # noqa: E402
from mrcnn_tf.layers.mask_head import MaskHead  # noqa: E402
from mrcnn_tf.ops import winograd  # noqa: E402
from mrcnn_tf.ops.roi_align import crop_multilevel_roi_align, multilevel_roi_align  # noqa: E402


def median_ms(fn, steps):
    """``speed.median_ms`` (two warm-up calls), rounded to 0.1 ms."""
    return round(speed.median_ms(fn, steps), 1)


def random_boxes(count, size=256, seed=0):
    """``[1, count, 4]`` boxes of 8-120 px inside a ``size`` image."""
    rng = np.random.default_rng(seed)
    y1, x1 = rng.uniform(0, size - 56, (2, 1, count))
    h, w = rng.uniform(8, 120, (2, 1, count))
    return tf.constant(np.stack([y1, x1, np.minimum(y1 + h, size), np.minimum(x1 + w, size)], -1), tf.float32)


def timed(fn, *args, steps, jit_compile=None):
    """Median ms of ``fn(*args)`` as a tf.function (XLA-compiled with ``jit_compile``), its outputs fetched."""
    compiled = tf.function(fn, jit_compile=jit_compile)
    return median_ms(lambda: tf.nest.map_structure(lambda t: t.numpy(), compiled(*args)), steps)


def roi_align_with_gradient(features, boxes, upstream, canonical, crop):
    """Box RoIAlign as the train step runs it (``train.crop_roi_align`` or ``xla_roi_align``): pooled values and
    the gradient of ``sum(upstream * pooled)`` with respect to the maps."""
    with tf.GradientTape() as tape:
        tape.watch(features)
        if crop:
            pooled = crop_multilevel_roi_align(features, boxes, 7, 2, 2, canonical)
        else:
            pooled = multilevel_roi_align(features, boxes, 7, 2, 2, canonical, jit_compile=True)
    return [pooled] + tape.gradient(pooled, features, output_gradients=upstream)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5)
    steps = p.parse_args().steps
    features = [tf.random.normal([1, 64 // 2 ** i, 64 // 2 ** i, 256]) for i in range(4)]  # P2-P5, 256 px
    rows, inner, columns = speed.GEMM_SHAPE  # the box head's first product on 512 RoIs
    pooled_rois, fc6 = tf.random.normal([rows, inner]), tf.random.normal([inner, columns])
    rois_np, fc6_np = pooled_rois.numpy(), fc6.numpy()
    kernel = tf.random.normal([3, 3, 256, 256])
    mask_pooled = tf.random.normal([100, 14, 14, 256])
    box_head, mask_head = BoxHead(2), MaskHead(2, norm="group_norm")
    box_head(tf.zeros([1, 1000, 7, 7, 256]))
    mask_head(tf.zeros([1, 100, 14, 14, 256]))
    proposals, detections, sampled = random_boxes(1000), random_boxes(100, seed=1), random_boxes(512, seed=2)
    upstream = tf.random.normal([1, 512, 7, 7, 256])
    canonical = Config(image_size=256).canonical_roi_size
    result = {
        "box_fc6_matmul_512": timed(tf.matmul, pooled_rois, fc6, steps=steps),
        "box_fc6_matmul_512_numpy": median_ms(lambda: rois_np @ fc6_np, steps),
        "conv3x3_256_on_64x64": timed(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"), features[0], steps=steps),
        "roi_align_1000_7x7": timed(lambda f, b: multilevel_roi_align(f, b, 7, 2, 2, canonical),
                                    features, proposals, steps=steps),
        "roi_align_100_14x14": timed(lambda f, b: multilevel_roi_align(f, b, 14, 2, 2, canonical),
                                     features, detections, steps=steps),
        "roi_align_1000_7x7_xla": timed(lambda f, b: multilevel_roi_align(f, b, 7, 2, 2, canonical),
                                        features, proposals, steps=steps, jit_compile=True),
        "roi_align_1000_7x7_crop": timed(lambda f, b: crop_multilevel_roi_align(f, b, 7, 2, 2, canonical),
                                         features, proposals, steps=steps),
        "roi_align_100_14x14_crop": timed(lambda f, b: crop_multilevel_roi_align(f, b, 14, 2, 2, canonical),
                                          features, detections, steps=steps),
        "roi_align_512_7x7_forward_gradient_xla": timed(roi_align_with_gradient, features, sampled, upstream,
                                                        canonical, False, steps=steps),
        "roi_align_512_7x7_forward_gradient_crop": timed(roi_align_with_gradient, features, sampled, upstream,
                                                         canonical, True, steps=steps),
        "box_head_1000": timed(box_head, tf.random.normal([1, 1000, 7, 7, 256]), steps=steps),
        "mask_head_100": timed(mask_head, mask_pooled[None], steps=steps),
        "mask_head_100_one_conv": timed(mask_head.convs[0], mask_pooled, steps=steps),
        "mask_head_100_one_group_norm_relu": timed(lambda x: tf.nn.relu(mask_head.norms[0](x)), mask_pooled,
                                                   steps=steps),
        "mask_head_100_transposed_conv": timed(mask_head.upsample, mask_pooled, steps=steps),
        "mask_conv3x3_100_direct": timed(tf.nn.conv2d, mask_pooled, kernel, 1, "SAME", steps=steps),
        "mask_conv3x3_100_direct_xla": timed(tf.nn.conv2d, mask_pooled, kernel, 1, "SAME", steps=steps,
                                             jit_compile=True),
        "mask_conv3x3_100_winograd": timed(winograd.conv3x3, mask_pooled, kernel, steps=steps),
        "mask_conv3x3_100_winograd_xla": timed(winograd.conv3x3, mask_pooled, kernel, steps=steps, jit_compile=True),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

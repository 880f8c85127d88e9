"""What one speed change buys: train steps (or inferences) with and without it, interleaved in one process.

    python benchmarks/ab.py --change fused_sgd|xla_roi_align|xla_group_norm|xla_conv|xla_features|crop_roi_align|
                                     crop_roi_align_train|rpn_matmul|flat_group_norm
                            [--settings torchvision|ours]
                            [--rounds 4] [--steps 3]

Builds two models in one process, the same but for the change, then times ``--steps`` train steps (inferences
for ``xla_features`` and ``crop_roi_align``) of each in turn, ``--rounds`` times, so that a shared machine's drift
hits both alike, and prints each one's median (ms) and its first call (tracing, and XLA compiling) as one JSON
line. Input: ``speed.py``'s synthetic ellipse, GroupNorm. Changes:

- ``fused_sgd``: ``keras.optimizers.SGD`` against :class:`mrcnn_tf.optimizer.FusedSGD`, the same schedule,
  momentum, weight decay and clipping (the same arithmetic, ``tests/test_optimizer.py``);
- ``xla_roi_align``: ``train.xla_roi_align`` off and on, with ``train.crop_roi_align`` off (the losses' box
  RoIAlign compiled by XLA or not; the same values, ``tests/ops/test_roi_align.py``);
- ``xla_group_norm``: ``train.xla_group_norm`` off and on (GroupNorm's training calls compiled by XLA, one
  function shared by all layers, compiled once a shape, or not; the same losses and gradients,
  ``tests/test_model_xla.py``);
- ``xla_conv``: ``train.xla_conv`` off and on (the training forwards of the backbone's, FPN's and RPN head's
  convolutions and their 3x3 filter gradients compiled by XLA, their other gradients TF's kernels, or all plain;
  the same losses and gradients, ``tests/test_model_xla.py``);
- ``xla_features``: inference with backbone + FPN and RPN head plain or under XLA (``inference.xla_features``;
  the same detections, ``tests/test_export.py``);
- ``crop_roi_align``: inference (``xla_features`` on) with both RoIAligns by gather (the box one under XLA, as
  before) or by ``tf.image.crop_and_resize`` (the same values, ``tests/ops/test_roi_align.py``);
- ``crop_roi_align_train``: ``train.crop_roi_align`` off and on (the losses' box RoIAlign all under XLA, or its
  forward by crop_and_resize and its gradient under XLA: the same values and gradients,
  ``tests/ops/test_roi_align.py``);
- ``rpn_matmul``: the RPN head's 1x1 objectness and delta layers called level by level (as before commit
  b24a07b), or once each on the positions of all levels (the same values and gradients,
  ``tests/layers/test_heads.py``). The name is from its first version, matrix products, which read the layers'
  weights under mixed precision as float16;
- ``flat_group_norm``: the XLA GroupNorm of the backbone and FPN with the activations grouped as
  ``[B, H, W, groups, C / groups]`` (as before), or as ``[B, H * W, groups, C / groups]``
  (:mod:`mrcnn_tf.ops.group_norm`; the same values, ``tests/benchmarks/test_ab.py``).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import speed  # noqa: E402
from mrcnn_tf.layers.group_norm import GroupNormalization  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def keras_sgd(config):
    """A compiled model with Keras' SGD of the settings FusedSGD gets."""
    model = compile_model(config)
    settings = model.optimizer.get_config()  # learning-rate schedule, momentum, weight decay, clipping
    model.compile(optimizer=keras.optimizers.SGD.from_config(settings))
    return model


def train_step(build):
    """``(config, batch) -> step``: one train step of the model ``build(config)`` returns."""
    def make(config, batch):
        model = build(config)
        return lambda: model.train_on_batch(batch)
    return make


def train_settings(**values):
    """A train step of the model with these ``train`` settings."""
    return train_step(lambda config: compile_model(config.replace(train=values)))


def train_setting(name, value):
    """A train step of the model with ``train.<name>`` set to ``value``."""
    return train_settings(**{name: value})


def pool_by_gather(model):
    """Make ``model``'s inference pool as before crop_and_resize: the box RoIAlign by gather under XLA, the mask
    RoIAlign by gather (the same values, ``tests/ops/test_roi_align.py``)."""
    for layer, jit_compile in ((model.box_roi_align, True), (model.mask_roi_align, False)):
        def call(features, rois, crop=False, pool=layer.call, jit_compile=jit_compile):
            return pool(features, rois, jit_compile=jit_compile)
        layer.call = call
    return model


def rpn_heads_by_conv(model):
    """Make ``model``'s RPN head call its 1x1 layers level by level, as before commit b24a07b (the same values,
    ``tests/benchmarks/test_ab.py``)."""
    head = model.rpn_head

    def heads(features, training):
        batch = tf.shape(features[0])[0]
        logits, deltas = [], []
        for x in features:
            x = head.conv(x, training=training)
            count = x.shape[1] * x.shape[2] * head.num_anchors
            logits.append(tf.reshape(head.objectness(x), [batch, count]))
            deltas.append(tf.reshape(head.deltas(x), [batch, count, 4]))
        return tf.concat(logits, axis=1), tf.concat(deltas, axis=1)

    head._heads = heads
    return model


def grouped_5d_group_norm(x, gamma, beta, groups, epsilon):
    """:func:`mrcnn_tf.ops.group_norm.group_norm` as it was before it flattened the positions: the activations
    grouped as ``[B, H, W, groups, C / groups]`` (Keras' shape), the statistics over axes 1, 2 and 4 (the same
    values)."""
    rank, channels = x.shape.rank, x.shape[-1]
    shape = tf.shape(x)
    group_shape = tf.concat([shape[:-1], [groups, channels // groups]], axis=0)
    grouped = tf.reshape(tf.cast(x, tf.float32), group_shape)  # [B, ..., groups, C / groups]
    axes = list(range(1, rank - 1)) + [rank]  # positions and the channels of a group
    mean, variance = tf.nn.moments(grouped, axes, keepdims=True)  # [B, 1, .., groups, 1] each
    inv = tf.math.rsqrt(variance + epsilon) * tf.reshape(tf.cast(gamma, tf.float32), [groups, channels // groups])
    shift = tf.reshape(tf.cast(beta, tf.float32), [groups, channels // groups]) - mean * inv
    return tf.cast(tf.reshape(grouped * inv + shift, shape), x.dtype)


grouped_5d_group_norm_xla = tf.function(grouped_5d_group_norm, jit_compile=True)


def group_norm_grouped_5d(model):
    """Make the XLA training calls of ``model``'s GroupNorm layers group as before: :func:`grouped_5d_group_norm`
    under XLA (the same values, ``tests/benchmarks/test_ab.py``)."""
    for layer in model._flatten_layers():
        if isinstance(layer, GroupNormalization) and layer.xla:
            def call(inputs, training=None, layer=layer, call=layer.call):
                if not training:
                    return call(inputs, training=training)
                gamma, beta = tf.convert_to_tensor(layer.gamma), tf.convert_to_tensor(layer.beta)
                return grouped_5d_group_norm_xla(inputs, gamma, beta, layer.groups, layer.epsilon)
            layer.call = call
    return model


def inference_step(xla_features, patch=lambda model: model):
    """``(config, batch) -> step``: one inference of the batch's images, as ``speed.py`` times it, by the model
    ``patch`` returns."""
    def make(config, batch):
        model = patch(compile_model(config))
        infer = tf.function(lambda x: model(x, training=False, xla_features=xla_features))
        images = tf.constant(batch["images"])
        return lambda: infer(images)["masks"].numpy()
    return make


CHANGES = {  # change -> (what is timed, (name, make) without it, (name, make) with it)
    "fused_sgd": ("train", ("keras_sgd", train_step(keras_sgd)), ("fused_sgd", train_step(compile_model))),
    "xla_roi_align": ("train", ("plain_roi_align", train_settings(xla_roi_align=False, crop_roi_align=False)),
                      ("xla_roi_align", train_settings(xla_roi_align=True, crop_roi_align=False))),
    "xla_group_norm": ("train", ("plain_group_norm", train_setting("xla_group_norm", False)),
                       ("xla_group_norm", train_setting("xla_group_norm", True))),
    "xla_conv": ("train", ("plain_conv", train_setting("xla_conv", False)),
                 ("xla_conv", train_setting("xla_conv", True))),
    "xla_features": ("inference", ("plain_features", inference_step(False)), ("xla_features", inference_step(True))),
    "crop_roi_align": ("inference", ("gather_roi_align", inference_step(True, pool_by_gather)),
                       ("crop_roi_align", inference_step(True))),
    "crop_roi_align_train": ("train", ("xla_roi_align", train_setting("crop_roi_align", False)),
                             ("crop_roi_align", train_setting("crop_roi_align", True))),
    "flat_group_norm": ("train",
                        ("grouped_5d", train_step(lambda config: group_norm_grouped_5d(compile_model(config)))),
                        ("grouped_4d", train_step(compile_model))),
    "rpn_matmul": ("train", ("rpn_conv", train_step(lambda config: rpn_heads_by_conv(compile_model(config)))),
                   ("rpn_matmul", train_step(compile_model))),
}


def timed_ms(fn):
    start = time.perf_counter()
    fn()
    return 1000.0 * (time.perf_counter() - start)


def interleaved_ms(variants, rounds, steps):
    """Median ms of each of ``variants`` (name -> zero-argument step), timed in turn ``rounds`` times, and the ms of
    each one's first call (tracing, and compiling where XLA is on)."""
    times = {name: [] for name in variants}
    first = {}
    for name, step in variants.items():  # trace and warm up
        first[name] = round(timed_ms(step), 1)
        step()
    for _ in range(rounds):
        for name, step in variants.items():
            times[name] += [timed_ms(step) for _ in range(steps)]
    return {name: round(float(np.median(values)), 1) for name, values in times.items()}, first


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--change", choices=sorted(CHANGES), required=True)
    p.add_argument("--settings", choices=("torchvision", "ours"), default="torchvision")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    config = speed.benchmark_config(args.settings, args.image_size, 1, "group_norm")
    batch = speed.synthetic_batch(config, 1)
    timed, *builds = CHANGES[args.change]
    variants = {name: make(config, batch) for name, make in builds}
    medians, first = interleaved_ms(variants, args.rounds, args.steps)
    result = {f"{name}_{timed}_ms": ms for name, ms in medians.items()}
    result.update({f"{name}_first_call_ms": ms for name, ms in first.items()})
    result.update({"change": args.change, "settings": args.settings, "image_size": args.image_size,
                   "steps_each": args.rounds * args.steps})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

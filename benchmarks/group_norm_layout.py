"""GroupNorm with the positions flattened (``mrcnn_tf.ops.group_norm``: ``[B, H * W, groups, C / groups]``) against
grouped as Keras does (``[B, H, W, groups, C / groups]``, our op before): forward and backward of every GroupNorm a
train step runs, at their real shapes.

    python benchmarks/group_norm_layout.py [--image-size 256] [--mask-rois 128] [--rounds 4] [--steps 3]

Records the input shapes of the model's GroupNorm layers in one training call (torchvision's settings, GroupNorm),
then times, in one tf.function each, the forward and backward (gradients of ``x``, gamma and beta for a random
upstream gradient) of all of them: the backbone and FPN's under XLA grouped 5-D (as before) and 4-D (one XLA
function for all layers, as the model runs them), and the mask head's four at ``--mask-rois`` RoIs (the benchmark
image gives only a few positives) as the model runs them, by Keras' own layer, against our op plain.
Each variant runs in turn ``--rounds`` times, ``--steps`` calls a round; prints the medians (ms) as one JSON line.
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
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import ab  # noqa: E402
import speed  # noqa: E402
from mrcnn_tf.layers.group_norm import GroupNormalization  # noqa: E402
from mrcnn_tf.ops.group_norm import group_norm, group_norm_xla  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def group_norm_inputs(model, batch):
    """``[(shape, xla, groups, epsilon)]``: the input shape of each GroupNorm call in one training call of
    ``model``, whether that layer runs under XLA, and its groups and epsilon."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, GroupNormalization)]
    seen = []
    for layer in layers:
        def call(inputs, training=None, layer=layer, call=layer.call):
            seen.append((tuple(inputs.shape), layer.xla, layer.groups, layer.epsilon))
            return call(inputs, training=training)
        layer.call = call
    try:
        model.train_on_batch(batch)
    finally:
        for layer in layers:
            del layer.call
    return seen


def by_function(norm):
    """``(shape, groups, epsilon, gamma, beta) -> (x -> y, [gamma, beta])``: ``norm`` as a GroupNorm."""
    def make(shape, groups, epsilon, gamma, beta):
        gamma, beta = tf.constant(gamma, tf.float32), tf.constant(beta, tf.float32)
        return lambda x: norm(x, gamma, beta, groups, epsilon), [gamma, beta]
    return make


def keras_layer(shape, groups, epsilon, gamma, beta):
    """Keras' own ``GroupNormalization`` as a GroupNorm, and its gamma and beta variables."""
    layer = keras.layers.GroupNormalization(groups=groups, epsilon=epsilon)
    layer.build(shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer, [layer.gamma.value, layer.beta.value]  # the tf.Variables, which a GradientTape takes


def forward_backward(make, calls, seed=0):
    """A zero-argument tf.function: forward and backward (gradients of ``x``, gamma and beta for a random upstream
    gradient) of the GroupNorm ``make`` builds for each of ``calls`` (``(shape, groups, epsilon)``), on random
    ``x``, gamma and beta."""
    rng = np.random.default_rng(seed)
    norms = []
    for shape, groups, epsilon in calls:
        x, upstream = (tf.constant(rng.normal(0.5, 2.0, shape), tf.float32) for _ in range(2))
        gamma, beta = rng.normal(1.0, 0.3, shape[-1]), rng.normal(0.0, 0.3, shape[-1])
        norms.append((x, upstream) + make(shape, groups, epsilon, gamma, beta))

    @tf.function
    def run():
        grads = []
        for x, upstream, norm, params in norms:
            with tf.GradientTape() as tape:
                tape.watch([x] + params)
                y = norm(x)
            grads.append(tape.gradient(y, [x] + params, output_gradients=upstream))
        return grads
    return lambda: tf.nest.map_structure(lambda t: t.numpy(), run())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--mask-rois", type=int, default=128)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    config = speed.benchmark_config("torchvision", args.image_size, 1, "group_norm")
    seen = group_norm_inputs(compile_model(config), speed.synthetic_batch(config, 1))
    features = [(shape, groups, epsilon) for shape, xla, groups, epsilon in seen if xla]
    mask = [((args.mask_rois,) + shape[1:], groups, epsilon) for shape, xla, groups, epsilon in seen if not xla]
    variants = {
        "grouped_5d_xla": forward_backward(by_function(ab.grouped_5d_group_norm_xla), features),
        "grouped_4d_xla": forward_backward(by_function(group_norm_xla), features),
        "keras_mask_head": forward_backward(keras_layer, mask),
        "grouped_4d_mask_head": forward_backward(by_function(group_norm), mask),
    }
    medians, _ = ab.interleaved_ms(variants, args.rounds, args.steps)
    print(json.dumps({**{f"{name}_ms": ms for name, ms in medians.items()},
                      "xla_layers": len(features), "mask_head_layers": len(mask), "mask_rois": args.mask_rois,
                      "image_size": args.image_size, "steps_each": args.rounds * args.steps}))


if __name__ == "__main__":
    main()

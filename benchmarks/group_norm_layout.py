"""GroupNorm with the positions flattened (``mrcnn_tf.ops.group_norm``: ``[B, H * W, groups, C / groups]``) against
grouped as Keras does (``[B, H, W, groups, C / groups]``, our op before): forward and backward of every GroupNorm a
train step runs, at their real shapes.

    python benchmarks/group_norm_layout.py [--image-size 256] [--mask-rois 128] [--rounds 4] [--steps 3]

Records the input shapes of the model's GroupNorm layers in one training call (torchvision's settings, GroupNorm),
then times, in one tf.function each, the forward and backward (gradients of ``x``, gamma and beta for a random
upstream gradient) of all of them: the backbone and FPN's under XLA (one XLA function for all layers, as the model
runs them), the mask head's four plain at ``--mask-rois`` RoIs (the benchmark image gives only a few positives).
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

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import ab  # noqa: E402
import speed  # noqa: E402
from mrcnn_tf.layers.group_norm import GroupNormalization  # noqa: E402
from mrcnn_tf.ops.group_norm import group_norm, group_norm_xla  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def group_norm_inputs(model, batch):
    """``[(shape, xla)]``: the input shape of each GroupNorm call in one training call of ``model``, and whether
    that layer runs under XLA."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, GroupNormalization)]
    seen = []
    for layer in layers:
        def call(inputs, training=None, layer=layer, call=layer.call):
            seen.append((tuple(inputs.shape), layer.xla))
            return call(inputs, training=training)
        layer.call = call
    model.train_on_batch(batch)
    for layer in layers:
        del layer.call
    return seen


def forward_backward(norm, shapes, seed=0):
    """A zero-argument tf.function: ``norm(x, gamma, beta, 32, 1e-5)`` forward and its gradients for random ``x``,
    gamma, beta and upstream gradient of each of ``shapes``."""
    rng = np.random.default_rng(seed)
    tensors = []
    for shape in shapes:
        x, upstream = (tf.constant(rng.normal(0.5, 2.0, shape), tf.float32) for _ in range(2))
        gamma, beta = (tf.constant(rng.normal(1.0, 0.3, shape[-1]), tf.float32) for _ in range(2))
        tensors.append((x, gamma, beta, upstream))

    @tf.function
    def run():
        grads = []
        for x, gamma, beta, upstream in tensors:
            with tf.GradientTape() as tape:
                tape.watch([x, gamma, beta])
                y = norm(x, gamma, beta, 32, 1e-5)
            grads.append(tape.gradient(y, [x, gamma, beta], output_gradients=upstream))
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
    features = [shape for shape, xla in seen if xla]
    mask = [(args.mask_rois,) + shape[1:] for shape, xla in seen if not xla]
    variants = {
        "grouped_5d_xla": forward_backward(ab.grouped_5d_group_norm_xla, features),
        "grouped_4d_xla": forward_backward(group_norm_xla, features),
        "grouped_5d_mask_head": forward_backward(ab.grouped_5d_group_norm, mask),
        "grouped_4d_mask_head": forward_backward(group_norm, mask),
    }
    medians, _ = ab.interleaved_ms(variants, args.rounds, args.steps)
    print(json.dumps({**{f"{name}_ms": ms for name, ms in medians.items()},
                      "xla_layers": len(features), "mask_head_layers": len(mask), "mask_rois": args.mask_rois,
                      "image_size": args.image_size, "steps_each": args.rounds * args.steps}))


if __name__ == "__main__":
    main()

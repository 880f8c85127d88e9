"""What the fused optimizer buys: train steps with Keras' SGD and with FusedSGD, interleaved.

    python benchmarks/optimizer_ab.py [--settings torchvision|ours] [--rounds 4] [--steps 3] [--image-size 256]

Builds two models in one process, the same but for the optimizer: ``keras.optimizers.SGD`` or
:class:`mrcnn_tf.optimizer.FusedSGD`, with the same schedule, momentum, weight decay and clipping (the same
arithmetic, ``tests/test_optimizer.py``). Then it times ``--steps`` train steps of each in turn, ``--rounds``
times, so that a shared machine's drift hits both alike, and prints each one's median step (ms) as one JSON line.
Input: ``speed.py``'s synthetic ellipse, GroupNorm.
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

import speed  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def build(config, fused_sgd):
    """A compiled model with FusedSGD, or with Keras' SGD of the same settings."""
    model = compile_model(config)
    if not fused_sgd:
        settings = model.optimizer.get_config()  # learning-rate schedule, momentum, weight decay, clipping
        model.compile(optimizer=keras.optimizers.SGD.from_config(settings))
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", choices=("torchvision", "ours"), default="torchvision")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    config = speed.benchmark_config(args.settings, args.image_size, 1, "group_norm")
    batch = speed.synthetic_batch(config, 1)
    variants = {"keras_sgd_ms": build(config, False), "fused_sgd_ms": build(config, True)}
    times = {name: [] for name in variants}
    for name, model in variants.items():  # trace and warm up
        for _ in range(2):
            model.train_on_batch(batch)
    for _ in range(args.rounds):
        for name, model in variants.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                model.train_on_batch(batch)
                times[name].append(1000.0 * (time.perf_counter() - start))
    result = {name: round(float(np.median(values)), 1) for name, values in times.items()}
    result.update({"settings": args.settings, "image_size": args.image_size,
                   "steps_each": args.rounds * args.steps})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

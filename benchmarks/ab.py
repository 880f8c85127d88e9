"""What one speed change buys: train steps with and without it, interleaved in one process.

    python benchmarks/ab.py --change fused_sgd|xla_roi_align [--settings torchvision|ours] [--rounds 4] [--steps 3]

Builds two models in one process, the same but for the change, then times ``--steps`` train steps of each in
turn, ``--rounds`` times, so that a shared machine's drift hits both alike, and prints each one's median (ms) as
one JSON line. Input: ``speed.py``'s synthetic ellipse, GroupNorm. Both changes leave inference as it is.
Changes:

- ``fused_sgd``: ``keras.optimizers.SGD`` against :class:`mrcnn_tf.optimizer.FusedSGD`, the same schedule,
  momentum, weight decay and clipping (the same arithmetic, ``tests/test_optimizer.py``);
- ``xla_roi_align``: ``train.xla_roi_align`` off and on (the losses' box RoIAlign compiled by XLA or not; the
  same values, ``tests/ops/test_roi_align.py``).
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


def keras_sgd(config):
    """A compiled model with Keras' SGD of the settings FusedSGD gets."""
    model = compile_model(config)
    settings = model.optimizer.get_config()  # learning-rate schedule, momentum, weight decay, clipping
    model.compile(optimizer=keras.optimizers.SGD.from_config(settings))
    return model


CHANGES = {  # change -> (name, build) without it, (name, build) with it
    "fused_sgd": (("keras_sgd", keras_sgd), ("fused_sgd", compile_model)),
    "xla_roi_align": (("plain_roi_align", lambda c: compile_model(c.replace(train={"xla_roi_align": False}))),
                      ("xla_roi_align", lambda c: compile_model(c.replace(train={"xla_roi_align": True})))),
}


def interleaved_ms(variants, step, rounds, steps):
    """Median ms of ``step(model)`` for each of ``variants`` (name -> model), timed in turn ``rounds`` times."""
    times = {name: [] for name in variants}
    for model in variants.values():  # trace and warm up
        for _ in range(2):
            step(model)
    for _ in range(rounds):
        for name, model in variants.items():
            for _ in range(steps):
                start = time.perf_counter()
                step(model)
                times[name].append(1000.0 * (time.perf_counter() - start))
    return {name: round(float(np.median(values)), 1) for name, values in times.items()}


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
    variants = {name: build(config) for name, build in CHANGES[args.change]}
    train = interleaved_ms(variants, lambda model: model.train_on_batch(batch), args.rounds, args.steps)
    result = {f"{name}_train_ms": ms for name, ms in train.items()}
    result.update({"change": args.change, "settings": args.settings, "image_size": args.image_size,
                   "steps_each": args.rounds * args.steps})
    print(json.dumps(result))


if __name__ == "__main__":
    main()

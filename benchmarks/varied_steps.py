"""Wall time of train steps whose positive-RoI count changes from step to step, as on real slices.

    python benchmarks/varied_steps.py [--steps 60] [--mask-norm-xla] [--seed 0]

Synthetic 256-px slices, each with 1-4 filled ellipses of random sizes (the same list for a given seed), one a
step, our own defaults for 256-px slices, GroupNorm. Steps that meet a new RoI count pay for any XLA program
compiled per shape; ``--mask-norm-xla`` puts the mask head's GroupNorms under XLA (as before commit 307be33) to
show what that cost. Prints one JSON line: total seconds, median and largest step (ms). Run each setting in its
own process: XLA's compile cache is per process.
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import speed  # noqa: E402
from mrcnn_tf.data.instances import make_example  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def varied_batch(rng, config):
    """One slice with 1-4 ellipses (radii 6-44 px) as a batch of one."""
    size = config.image_size
    count = int(rng.integers(1, 5))
    masks = np.zeros((count, size, size), np.uint8)
    image = np.full((size, size, 3), 40, np.uint8)
    for mask in masks:
        centre = (int(rng.integers(size // 5, size - size // 5)), int(rng.integers(size // 5, size - size // 5)))
        axes = (int(rng.integers(6, 45)), int(rng.integers(6, 45)))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
        image[mask > 0] = 200
    example = make_example(image, masks, np.ones(count, np.int32), size, config.max_instances, "synthetic")
    return speed.example_batch(example, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--mask-norm-xla", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    config = speed.benchmark_config("ours", 256, 1, "group_norm")
    model = compile_model(config)
    for norm in model.mask_head.norms:
        norm.xla = args.mask_norm_xla
    rng = np.random.default_rng(args.seed)
    batches = [varied_batch(rng, config) for _ in range(args.steps)]
    model.train_on_batch(batches[0])  # tracing, and the compiles every step shares
    times = []
    for batch in batches:
        start = time.perf_counter()
        model.train_on_batch(batch)
        times.append(1000.0 * (time.perf_counter() - start))
    print(json.dumps({"mask_norm_xla": args.mask_norm_xla, "steps": args.steps, "total_s": round(sum(times) / 1000, 1),
                      "median_step_ms": round(float(np.median(times)), 1), "max_step_ms": round(max(times), 1)}))


if __name__ == "__main__":
    main()

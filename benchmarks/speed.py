"""Time one train step and one inference of our Mask R-CNN on this machine; print one JSON line.

    python benchmarks/speed.py [--image-size 256] [--batch-size 1] [--steps 10] [--norm group_norm] [--jit-compile]

Input: synthetic images with one filled ellipse as the only instance. Times are medians after two warm-up
steps (the first traces the graph); inference is per image; the pipeline figure is the training tf.data
pipeline alone (with augmentation). Everything but the JSON line goes to stderr.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.data import pipeline  # noqa: E402
from mrcnn_tf.data.instances import make_example  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def synthetic_batch(config, batch_size):
    size = config.image_size
    mask = np.zeros((1, size, size), np.uint8)
    cv2.ellipse(mask[0], (size // 2, size // 2), (size // 5, size // 7), 0, 0, 360, 1, -1)
    image = np.full((size, size, 3), 40, np.uint8)
    image[mask[0] > 0] = 200
    example = make_example(image, mask, np.ones(1, np.int32), size, config.max_instances, "synthetic")
    batch = {key: np.repeat(example[key][None], batch_size, axis=0) for key in ("gt_boxes", "gt_classes", "gt_masks")}
    batch["images"] = np.repeat(example["image"][None], batch_size, axis=0)
    return batch


def median_ms(fn, steps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def pipeline_images_per_s(batch, count=64, batches=200):
    """Images per second of the training tf.data pipeline alone (lookup, augmentation, batching, prefetch)."""
    arrays = {key: np.repeat(value[:1], count, axis=0) for key, value in batch.items()}
    iterator = iter(pipeline.make_training_dataset(arrays, 1, seed=0, augment=True))
    for _ in range(20):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--norm", choices=("frozen_bn", "group_norm"), default=None)
    p.add_argument("--jit-compile", action="store_true")
    args = p.parse_args()
    config = Config(image_size=args.image_size).replace(
        backbone={"norm": args.norm}, train={"jit_compile": args.jit_compile, "batch_size": args.batch_size}
    )
    model = compile_model(config)
    batch = synthetic_batch(config, args.batch_size)
    train_ms = median_ms(lambda: model.train_on_batch(batch), args.steps)
    images = tf.constant(batch["images"])
    infer = tf.function(lambda x: model(x, training=False))
    infer_ms = median_ms(lambda: infer(images)["masks"].numpy(), args.steps) / args.batch_size
    images_per_s = pipeline_images_per_s(batch)
    print(json.dumps({
        "train_step_ms": round(train_ms, 1), "inference_ms": round(infer_ms, 1),
        "pipeline_images_per_s": round(images_per_s, 1), "image_size": args.image_size,
        "batch_size": args.batch_size, "norm": config.backbone.resolved_norm, "jit_compile": args.jit_compile,
        "max_detections": config.inference.max_detections,
    }))


if __name__ == "__main__":
    main()

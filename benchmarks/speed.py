"""Time one train step and one inference of our Mask R-CNN on this machine; print one JSON line.

    python benchmarks/speed.py [--image-size 256] [--batch-size 1] [--steps 10] [--norm group_norm]
                               [--settings torchvision|ours] [--jit-compile] [--no-ours]

Input: synthetic images with one filled ellipse as the only instance, as ``../shared/bench/peer_torchvision.py``.
Times are medians after two warm-up steps (the first traces the graph); inference is per image; the pipeline
figure is the training tf.data pipeline alone (with augmentation). GFLOPs are TF's op statistics of the traced
train step (forward + gradients) and inference graphs (``benchmarks/profile_stages.py`` splits them stage by stage
with the same counters). ``gemm_gflop_per_s`` is this machine's rate, in the same run, on one fixed float32
product by ``tf.matmul``, ``GEMM_SHAPE``: the box head's first layer at torchvision's settings, 256 px, batch 1
(``[512, 12544] x [12544, 1024]``, the train step's largest single product there). The step's own GFLOP/s against
it says how close to the machine's limit the step runs. Everything but the JSON line goes to stderr.

The model runs with this device's speed policy (``config.runtime``; ``--jit-compile`` compiles the whole train
step by XLA instead); the JSON line names the device and whether the step was compiled whole.

``--settings torchvision`` (the default) samples and keeps as torchvision's ``maskrcnn_resnet50_fpn`` does:
RPN 256 anchors per image at 0.5 positives, 2000/1000 proposals before/after NMS in training and 1000/1000 at
inference, 512 RoIs per image at 0.25 positives with every positive through the mask head, and at inference a
score threshold of 0 and 100 detections, all through the mask head. The top-level figures use those settings;
unless ``--no-ours``, the same figures with our own defaults (``mrcnn_tf.config``) follow under ``"ours"``.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrcnn_tf.config import Config  # noqa: E402
from mrcnn_tf.data import pipeline  # noqa: E402
from mrcnn_tf.data.instances import make_example  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402

TORCHVISION = {
    "rpn": {"batch_size_per_image": 256, "positive_fraction": 0.5, "train_pre_nms_topk": 2000,
            "train_post_nms_topk": 1000, "test_pre_nms_topk": 1000, "test_post_nms_topk": 1000},
    "roi": {"batch_size_per_image": 512, "positive_fraction": 0.25, "mask_rois_per_image": 128},
    "inference": {"score_threshold": 0.0, "max_detections": 100},
}


def benchmark_config(settings, image_size, batch_size, norm=None, jit_compile=False):
    """Our defaults at ``image_size`` / ``batch_size``, with torchvision's sampling when ``settings`` says so.
    ``jit_compile``: the whole train step compiled by XLA; otherwise the device policy's speed switches."""
    config = Config(image_size=image_size).replace(
        backbone={"norm": norm}, train={"batch_size": batch_size}, runtime={"jit_compile": jit_compile or None}
    )
    return config.replace(**TORCHVISION) if settings == "torchvision" else config


# The runtime switches that put parts of the train step under XLA (or crop_and_resize, whose gradient XLA runs).
COUNTING_RUNTIME = {"xla_conv": False, "xla_group_norm": False, "xla_roi_align": False, "crop_roi_align": False}


def counting_twin(model):
    """``model`` rebuilt with every training XLA switch off (``COUNTING_RUNTIME``), with its weights: TF's op
    statistics do not count inside XLA functions, so FLOPs are counted on this twin (the same arithmetic and,
    with the same weights, the same sampled RoIs, so the same mask-head count)."""
    twin = compile_model(model.config.replace(runtime=COUNTING_RUNTIME))
    twin.set_weights(model.get_weights())
    return twin


def synthetic_batch(config, batch_size):
    """The peer's input: one filled ellipse (centre 0.45/0.55 of the side, radii 0.12/0.18) on a flat image."""
    size = config.image_size
    mask = np.zeros((1, size, size), np.uint8)
    centre = (int(size * 0.55), int(size * 0.45))
    cv2.ellipse(mask[0], centre, (int(size * 0.18), int(size * 0.12)), 0, 0, 360, 1, -1)
    image = np.full((size, size, 3), 40, np.uint8)
    image[mask[0] > 0] = 200
    example = make_example(image, mask, np.ones(1, np.int32), size, config.max_instances, "synthetic")
    return example_batch(example, batch_size)


def example_batch(example, batch_size):
    """A batch of ``batch_size`` copies of one ``make_example`` example, keyed as the model's train step reads it."""
    batch = {key: np.repeat(example[key][None], batch_size, axis=0) for key in ("gt_boxes", "gt_classes", "gt_masks")}
    batch["images"] = np.repeat(example["image"][None], batch_size, axis=0)
    return batch


def in_process_inference(model):
    """``model``'s inference as ``inference.detect`` runs it (backbone + FPN, RPN head and box RoIAlign under XLA
    when ``runtime.xla_features``), as one ``tf.function`` of the images."""
    return tf.function(lambda x: model(x, training=False, xla_features=model.runtime.xla_features))


def cpu_description():
    """The CPU's model name and its widest vector extension (the figures differ widely between CPUs)."""
    name, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    vector = next((flag for flag in ("avx512f", "avx2", "avx") if flag in flags), "none")
    return {"cpu": name, "cpu_vector": vector, "cores": os.cpu_count()}


def median_ms(fn, steps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


GEMM_SHAPE = (512, 12544, 1024)  # (rows, inner, columns): the box head's first layer on 512 RoIs of 256 x 7 x 7;
# fixed, whatever the run's settings, so that runs compare


def gemm_gflop_per_s(steps, shape=GEMM_SHAPE):
    """GFLOP/s of one float32 ``tf.matmul`` of ``shape`` (2 per multiply-add), the median of ``steps`` calls."""
    rows, inner, columns = shape
    a = tf.random.normal([rows, inner])
    b = tf.random.normal([inner, columns])
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))  # a scalar out: no copy timed beside it
    return 2.0 * rows * inner * columns / 1e9 / median_ms(lambda: product(a, b).numpy(), steps) * 1000.0


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


def graph_gflop(concrete):
    """GFLOPs of a traced graph by TF's registered op statistics (2 per multiply-add)."""
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=concrete.graph, options=options).total_float_ops / 1e9


def mask_head_gflop(model, batch_size, rois, training):
    """GFLOPs of the mask head on ``batch_size x rois`` RoIs (forward, or forward + gradients when ``training``).

    The model runs its mask head on a dynamic number of RoIs per image (the largest count of positives, or of
    detections, in the batch), which the graph statistics cannot count, so the head is counted apart on a static
    batch of that size. Under XLA the head runs on static slots the graph statistics already count: 0 here.
    """
    cfg = model.config
    if model.runtime.jit_compile:
        return 0.0
    pooled = tf.zeros([batch_size, rois, cfg.roi.mask_pool_size, cfg.roi.mask_pool_size, cfg.backbone.fpn_channels])

    @tf.function
    def head(pooled):
        with tf.GradientTape() as tape:
            tape.watch(pooled)
            loss = tf.reduce_sum(model.mask_head(pooled))
        return tape.gradient(loss, [pooled] + model.mask_head.trainable_variables) if training else loss

    return graph_gflop(head.get_concrete_function(pooled))


def positive_rois(model, batch):
    """The mask head's RoIs per image in one training step of ``batch``: the largest count of positives."""
    @tf.function
    def count(batch):
        return model.sampled_rois(batch)["positive"]

    positive = count(batch)[:, :model.mask_roi_slots]
    return int(tf.reduce_max(tf.reduce_sum(tf.cast(positive, tf.int32), axis=1)))


def train_gflop(model, batch):
    """GFLOPs of one training step's forward pass and gradients, mask head on its sampled positives."""
    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model.compute_losses(batch, training=True)["loss"]
        return tape.gradient(loss, model.trainable_variables)

    rois = positive_rois(model, batch)
    batch_size = batch["images"].shape[0]
    return graph_gflop(step.get_concrete_function(batch)) + mask_head_gflop(model, batch_size, rois, True), rois


def measure(config, steps):
    """Train step and inference medians (ms) and GFLOPs of ``config`` on the synthetic batch."""
    model = compile_model(config)
    batch = synthetic_batch(config, config.train.batch_size)
    tensors = {key: tf.constant(value) for key, value in batch.items()}
    train_ms = median_ms(lambda: model.train_on_batch(batch), steps)
    # Inference as ``inference.detect`` runs it; its FLOPs are counted on the plain graph (the op statistics skip
    # XLA functions).
    infer = in_process_inference(model)
    images = tensors["images"]
    infer_ms = median_ms(lambda: infer(images)["masks"].numpy(), steps) / config.train.batch_size
    detections = int(infer(images)["num_detections"].numpy().max())
    train_gf, mask_rois = train_gflop(counting_twin(model), tensors)
    batch_size = config.train.batch_size
    plain = tf.function(lambda x: model(x, training=False))
    infer_gf = graph_gflop(plain.get_concrete_function(images)) + mask_head_gflop(model, batch_size, detections,
                                                                                  False)
    return {
        "train_step_ms": round(train_ms, 1), "inference_ms": round(infer_ms, 1),
        "train_gflop": round(train_gf, 1), "inference_gflop": round(infer_gf / batch_size, 1),
        "train_gflop_per_s": round(train_gf / train_ms * 1000, 1),
        "inference_gflop_per_s": round(infer_gf / batch_size / infer_ms * 1000, 1),
        "detections": detections, "train_mask_rois": mask_rois,
    }, batch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--norm", choices=("frozen_bn", "group_norm"), default=None)
    p.add_argument("--settings", choices=("torchvision", "ours"), default="torchvision")
    p.add_argument("--jit-compile", action="store_true",
                   help="compile the whole train step by XLA (runtime.jit_compile)")
    p.add_argument("--no-ours", action="store_true", help="skip the second measurement with our own defaults")
    args = p.parse_args(argv)
    config = benchmark_config(args.settings, args.image_size, args.batch_size, args.norm, args.jit_compile)
    result, batch = measure(config, args.steps)
    result["pipeline_images_per_s"] = round(pipeline_images_per_s(batch), 1)
    result["gemm_gflop_per_s"] = round(gemm_gflop_per_s(args.steps), 1)
    runtime = config.runtime.resolved(gpu_visible=bool(tf.config.list_physical_devices("GPU")))  # as the model's
    result.update({"image_size": args.image_size, "batch_size": args.batch_size, "settings": args.settings,
                   "norm": config.backbone.resolved_norm, "device": runtime.device,
                   "jit_compile": runtime.jit_compile, **cpu_description()})
    if args.settings == "torchvision" and not args.no_ours:
        ours = benchmark_config("ours", args.image_size, args.batch_size, args.norm, args.jit_compile)
        result["ours"], _ = measure(ours, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Where a train step's time goes: stage-by-stage timing and FLOP counts of our Mask R-CNN.

    python benchmarks/profile_stages.py [--settings torchvision|ours] [--steps 8] [--image-size 256] [--norm ...]

Train-step times grow stage by stage (each line runs everything above it too, forward + backward + SGD update of the
variables it touches); a stage's cost is its line minus the line above. FLOPs are TF's own op statistics of the
traced graphs (``tf.compat.v1.profiler``: convolutions, matmuls and their gradients, 2 per multiply-add).
The inference pass is cut the same way (forward only). The model runs with this device's speed policy
(``config.runtime``); FLOPs are counted on its twin without XLA (``speed.counting_twin``), since TF's op statistics
do not count inside XLA functions. Prints a table to stderr and one JSON line to stdout.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import mrcnn_tf  # noqa: E402,F401  (first: it sets TensorFlow's CPU environment before TF loads)

import tensorflow as tf  # noqa: E402

import speed  # noqa: E402  (benchmarks/speed.py: Python puts a script's own folder on its path)
from mrcnn_tf.ops import masks as mask_ops  # noqa: E402
from mrcnn_tf.training import compile_model  # noqa: E402


def stage_losses(model, batch, stage):
    """The loss of the train step cut after ``stage`` (1 backbone+FPN ... 5 mask head)."""
    features = model.extract_features(batch["images"], training=True)
    if stage == 1:
        return tf.add_n([tf.reduce_mean(f) for f in features])
    gt_boxes, gt_classes = tf.cast(batch["gt_boxes"], tf.float32), tf.cast(batch["gt_classes"], tf.int32)
    rpn_logits, rpn_deltas = model.rpn_head(features, training=True)
    values = model._rpn_losses(rpn_logits, rpn_deltas, gt_boxes, gt_classes)
    if stage == 2:
        return values["rpn_objectness"] + values["rpn_box"]
    rois = model._sample_rois(rpn_logits, rpn_deltas, gt_boxes, gt_classes)
    loss = values["rpn_objectness"] + values["rpn_box"]
    if stage == 3:
        return loss + 0.0 * tf.reduce_sum(rois["box_targets"])
    box = model._box_losses(features, rois)
    loss += box["cls"] + box["box"]
    if stage == 4:
        return loss
    return loss + model._mask_loss(features, rois, batch["gt_masks"])


STAGES = ("backbone + FPN", "RPN head + RPN targets/losses", "proposals (top-k, decode, NMS) + RoI sampling",
          "box RoIAlign + box head + losses", "mask RoIAlign + mask head + mask targets/loss")


def inference_upto(model, images, stage):
    """The inference pass cut after ``stage`` (1 backbone+FPN ... 6 mask pasting), reduced to a scalar; backbone
    + FPN and RPN head under XLA when ``runtime.xla_features`` says so, and the RoIAligns by crop_and_resize
    (``runtime.crop_roi_align``), as ``inference.detect`` runs them."""
    xla = model.runtime.xla_features
    features = model.extract_features(images, xla=xla)
    out = [tf.reduce_sum(f) for f in features]
    if stage >= 2:
        logits, deltas = model.rpn_head(features, xla=xla)
        proposals, valid = model.proposal_layer(logits, deltas, training=False)
        out.append(tf.reduce_sum(proposals))
    if stage >= 3:
        pooled = model.pool_boxes(features, proposals, xla=xla)
        class_logits, box_deltas = model.box_head(pooled)
        out.append(tf.reduce_sum(class_logits) + tf.reduce_sum(box_deltas))
    if stage >= 4:
        detections = model.detection_layer(proposals, valid, class_logits, box_deltas)
        out.append(tf.reduce_sum(detections["boxes"]))
    if stage >= 5:
        mask_probs = model._mask_probs(features, detections)
        out.append(tf.reduce_sum(mask_probs))
    if stage >= 6:
        size = model.config.image_size
        pasted = mask_ops.paste_masks(mask_probs, detections["boxes"], size, size)
        out.append(tf.reduce_sum(tf.cast(pasted >= 0.5, tf.float32)))
    return tf.add_n(out)


INFERENCE_STAGES = ("backbone + FPN", "RPN head + proposals", "box RoIAlign + box head", "detections (NMS)",
                    "mask RoIAlign + mask head", "mask pasting")


def make_step(model, stage):
    """A ``tf.function`` of a batch: the train step cut after ``stage`` (``stage_losses``), its gradients and a
    plain SGD update of the variables they reach (a tiny rate: the weights stay as they are); returns the loss."""
    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = stage_losses(model, batch, stage)
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
            if g is not None:
                v.assign_sub(1e-9 * g)
        return loss

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", choices=("torchvision", "ours"), default="torchvision")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--norm", choices=("frozen_bn", "group_norm"), default=None)
    args = p.parse_args(argv)
    config = speed.benchmark_config(args.settings, args.image_size, 1, args.norm)
    model = compile_model(config)
    counting = speed.counting_twin(model)
    batch = {k: tf.constant(v) for k, v in speed.synthetic_batch(config, 1).items()}
    rows, previous = [], 0.0
    for stage, name in enumerate(STAGES, start=1):
        step = make_step(model, stage)
        gflop = speed.graph_gflop(make_step(counting, stage).get_concrete_function(batch))
        if stage == len(STAGES):  # the mask head runs on a dynamic number of RoIs: counted apart
            gflop += speed.mask_head_gflop(counting, 1, speed.positive_rois(counting, batch), True)
        ms = speed.median_ms(lambda: step(batch).numpy(), args.steps)
        rows.append({"stage": name, "cumulative_ms": round(ms, 1), "stage_ms": round(ms - previous, 1),
                     "cumulative_gflop": round(gflop, 2)})
        print(f"{stage}. {name:50s} {ms:8.1f} ms  (+{ms - previous:7.1f})  {gflop:7.2f} GFLOP", file=sys.stderr)
        previous = ms
    full = speed.median_ms(lambda: model.train_on_batch(batch), args.steps)
    print(f"   keras train_on_batch (optimizer, metrics)         {full:8.1f} ms", file=sys.stderr)
    inference_rows, previous = [], 0.0
    for stage, name in enumerate(INFERENCE_STAGES, start=1):
        run = tf.function(lambda images, stage=stage: inference_upto(model, images, stage))
        ms = speed.median_ms(lambda: run(batch["images"]).numpy(), args.steps)
        inference_rows.append({"stage": name, "cumulative_ms": round(ms, 1), "stage_ms": round(ms - previous, 1)})
        print(f"inference {stage}. {name:40s} {ms:8.1f} ms  (+{ms - previous:7.1f})", file=sys.stderr)
        previous = ms
    print(json.dumps({"settings": args.settings, "norm": config.backbone.resolved_norm, "train_stages": rows,
                      "train_on_batch_ms": round(full, 1), "inference_stages": inference_rows}))


if __name__ == "__main__":
    main()

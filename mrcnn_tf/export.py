"""SavedModel export with a uint8 serving signature, usable without this package (``tf.saved_model.load``).

Usage: ``mrcnn-export --run RUN_DIR --out EXPORT_DIR`` (``mrcnn_tf.cli.export``).

Signature ``serving_default`` (shape letters: ``B`` batch, ``H``/``W`` input image size, ``D`` detections):

* input ``images``: uint8 ``[B, H, W, 3]`` RGB, 0-255; ``B``, ``H`` and ``W`` are free (all images of one call
  share a size). A float tensor or one of another rank is rejected by the signature's TensorSpec.
* outputs, each image resized inside to the configured ``image_size`` (bilinear, as ``inference.detect``):

  - ``boxes`` float32 ``[B, D, 4]``: ``[y1, x1, y2, x2]`` in the pixels of the input image (see ``ops.boxes``);
  - ``scores`` float32 ``[B, D]``, best first; ``classes`` int32 ``[B, D]`` (1 = tumour);
  - ``masks`` uint8 ``[B, D, H, W]``: 0/1 at the input size, ``mask_probs`` pasted with ``ops.masks.paste_masks``;
  - ``num_detections`` int32 ``[B]``: rows ``num_detections:`` are padding, with score 0 and zero masks.

``D`` is ``config.inference.max_detections``. Baked in from ``config.inference`` at export time, and written to
``EXPORT_DIR/export.json`` with ``D``: ``score_threshold`` (detections scoring below it are dropped), ``nms_iou``
(per-class NMS overlap) and ``mask_threshold`` (mask probability at which a pixel counts). To change them,
export again from a config that holds the new values. Outputs are float32 / int32 / uint8 whatever the training
precision.
"""
import json
import os

import keras
import tensorflow as tf

from mrcnn_tf import inference, runs

SIGNATURE = "serving_default"
EXPORT_FILE = "export.json"


def export_settings(config):
    """What the export bakes in (written to ``export.json``): ``D``, the thresholds, the network input size."""
    inference = config.inference
    return {
        "signature": SIGNATURE,
        "max_detections": inference.max_detections,
        "score_threshold": inference.score_threshold,
        "nms_iou": inference.nms_iou,
        "mask_threshold": inference.mask_threshold,
        "image_size": config.image_size,
        "class_names": list(config.class_names),
    }


def export_model(model, out_dir):
    """Write ``model`` (a :class:`mrcnn_tf.model.MaskRCNN`) as a SavedModel with the ``serving_default``
    signature and ``export.json`` into ``out_dir``. Returns ``out_dir``."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=inference.serving_fn(model),
                         input_signature=[inference.IMAGES_SPEC])
    # Without the custom gradients (crop_and_resize RoIAlign's, compiled by XLA): serving needs none, and the
    # SavedModel must stay XLA-free.
    archive.write_out(out_dir, options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
                      verbose=False)
    with open(os.path.join(out_dir, EXPORT_FILE), "w") as f:
        json.dump(export_settings(model.config), f, indent=1)
    return out_dir


def export_run(run_dir, out_dir):
    """Export the final weights of the run folder ``run_dir`` (``mrcnn_tf.runs``) to ``out_dir``; returns it."""
    return export_model(runs.load_run(run_dir), out_dir)


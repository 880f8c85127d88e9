"""SavedModel export for TensorFlow Serving, usable without this package (TensorFlow alone loads and runs it).

Layout, as TensorFlow Serving reads it: ``BASE/<version>/saved_model.pb`` + ``variables/``, with
``BASE/<version>/export.json`` recording what the export baked in. A version folder appears whole or not at all
(written beside it under a hidden name, then renamed), so a server watching ``BASE`` never loads half an export.
Each variable is stored once (``tf.saved_model.save`` of a module holding the model's variables; Keras'
``ExportArchive`` stored them twice).

Signatures (shape letters: ``B`` batch, ``H``/``W`` input image size, ``n`` detections of the call):

* ``serving_default``: input ``images`` uint8 ``[B, H, W, 3]`` RGB, 0-255; ``B``, ``H`` and ``W`` are free.
* ``serving_encoded``: input ``image_bytes`` string ``[B]``: encoded PNG, JPEG, BMP or GIF files (what a REST or
  gRPC client posts: ``{"b64": ...}`` in TF Serving's JSON), grey or colour, 8 or 16 bits; all images of one call
  share a size.

Both give the same outputs, each image resized inside to the configured ``image_size`` (bilinear, as
``inference.detect``):

* ``boxes`` float32 ``[B, n, 4]``: ``[y1, x1, y2, x2]`` in the pixels of the input image (see ``ops.boxes``);
* ``scores`` float32 ``[B, n]``, best first; ``classes`` int32 ``[B, n]`` (1 = tumour);
* ``masks`` uint8 ``[B, n, H, W]``: 0/1 at the input size;
* ``num_detections`` int32 ``[B]``: image ``b``'s rows ``num_detections[b]:`` are padding (score 0, zero masks).

A call holding more than ``max_input_pixels`` pixels (batch x height x width; 2048 x 2048 by default, about 470 MB
of working memory) is refused with an InvalidArgumentError saying so, instead of running out of memory.

``n`` is the largest ``num_detections`` of the call (at most ``max_detections``), so a response carries no empty
slots beyond it. The score threshold, NMS IoU, ``max_detections`` and mask threshold are baked in (from the run's
configuration, or the export's flags) and recorded in ``export.json``.
"""
import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf

from mrcnn_tf import inference, runs
from mrcnn_tf.errors import ConfigError

SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "serving_encoded"
EXPORT_FILE = "export.json"
ENCODED_SPEC = tf.TensorSpec([None], tf.string, name="image_bytes")


def export_settings(config):
    """What the export bakes in (written to ``export.json``): the thresholds, ``max_detections``, the network
    input size, the class names and the signatures."""
    inference_config = config.inference
    return {
        "signatures": {SIGNATURE: "images: uint8 [B, H, W, 3]", ENCODED_SIGNATURE: "image_bytes: string [B]"},
        "max_detections": inference_config.max_detections,
        "score_threshold": inference_config.score_threshold,
        "nms_iou": inference_config.nms_iou,
        "mask_threshold": inference_config.mask_threshold,
        "min_box_size": inference_config.min_box_size,
        "max_input_pixels": inference_config.max_input_pixels,
        "flip_tta": inference_config.flip_tta,
        "image_size": config.image_size,
        "class_names": list(config.class_names),
        "data": dataclasses.asdict(config.data),  # how volumes are read (modalities, scaling): mrcnn-predict
    }


def next_version(base_dir):
    """One more than the highest integer-named folder of ``base_dir`` (1 when there is none)."""
    if not os.path.isdir(base_dir):
        return 1
    versions = [int(name) for name in os.listdir(base_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def decode_images(image_bytes):
    """Encoded images ``[B]`` (PNG, JPEG, BMP, GIF; grey or colour) -> uint8 RGB ``[B, H, W, 3]``; an error when
    they differ in size."""

    def decode(data):
        return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)  # [H, W, 3]

    sizes = tf.map_fn(lambda data: tf.shape(decode(data))[:2], image_bytes, fn_output_signature=tf.int32)  # [B, 2]
    same = tf.debugging.assert_equal(sizes, sizes[:1], message="all images of one request must share a size")
    with tf.control_dependencies([same]):
        return tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def serving_module(model):
    """A ``tf.Module`` holding ``model``'s variables (each once) and the two serving functions."""
    serve = inference.serving_fn(model)  # XLA-free: TF Serving's CPU build does not compile XLA by default

    def trimmed(outputs):
        count = tf.reduce_max(outputs["num_detections"])  # the call's largest n
        return {key: value if key == "num_detections" else value[:, :count] for key, value in outputs.items()}

    module = tf.Module()
    module.variables_once = [getattr(v, "value", v) for v in model.variables]  # Keras variables wrap tf.Variables
    module.serve = tf.function(lambda images: trimmed(serve(images)), input_signature=[inference.IMAGES_SPEC])
    module.serve_encoded = tf.function(lambda image_bytes: trimmed(serve(decode_images(image_bytes))),
                                       input_signature=[ENCODED_SPEC])
    return module


def export_model(model, base_dir, version=None, source=None):
    """Write ``model`` (a :class:`mrcnn_tf.model.MaskRCNN`) as ``base_dir/<version>/`` (default: the next
    version) with both signatures and ``export.json`` (plus ``source``, what it was exported from). Returns the
    version folder; ConfigError when that version exists."""
    version = next_version(base_dir) if version is None else int(version)
    if version < 1:
        raise ConfigError(f"--version must be a positive integer, got {version}")
    version_dir = os.path.join(base_dir, str(version))
    if os.path.exists(version_dir):
        raise ConfigError(f"{version_dir} exists: choose another --version (the next free one is "
                          f"{next_version(base_dir)})")
    os.makedirs(base_dir, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{version}.partial-", dir=base_dir)
    try:
        module = serving_module(model)
        signatures = {SIGNATURE: module.serve, ENCODED_SIGNATURE: module.serve_encoded}
        # Without the custom gradients (crop_and_resize RoIAlign's, compiled by XLA): serving needs none, and the
        # SavedModel must stay XLA-free.
        tf.saved_model.save(module, partial, signatures=signatures,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        with open(os.path.join(partial, EXPORT_FILE), "w") as f:
            json.dump({"version": version, **export_settings(model.config), "source": source or {}}, f, indent=1)
        os.replace(partial, version_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return version_dir


def export_run(run_dir, base_dir, weights="final", version=None, score_threshold=None, nms_iou=None,
               max_detections=None, max_input_pixels=None, flip_tta=None):
    """Export a run folder's ``weights`` (``"final"``, ``"best"`` or a ``.weights.h5`` path) to
    ``base_dir/<version>/``, with the run's inference settings or those given. Returns the version folder."""
    given = {"score_threshold": score_threshold, "nms_iou": nms_iou, "max_detections": max_detections,
             "max_input_pixels": max_input_pixels, "flip_tta": flip_tta}
    overrides = {key: value for key, value in given.items() if value is not None}
    model = runs.load_run(run_dir, weights, inference=overrides)
    source = {"run": os.path.abspath(run_dir), "weights": weights}
    return export_model(model, base_dir, version, source)

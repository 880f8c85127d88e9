"""Predictions for a folder of images (or one image) from an export folder or a training run folder.

Usage: ``mrcnn-predict --model EXPORT_DIR_or_RUN_DIR --images PATH --out DIR [--score-threshold 0.5]``
(``mrcnn_tf.cli.predict``).

Writes, for the images of ``PATH`` (``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp``; grey or colour)::

    DIR/masks/<stem>.png       instance ids at the image's size: 0 background, i for detection i (1 = best
                               score); where detections overlap the higher score wins. uint8, or uint16 past 255
    DIR/overlays/<stem>.png    the detections' contours and scores in red over the image
    DIR/predictions.json       COCO results: image_id, category_id 1, bbox [x, y, w, h], score, RLE segmentation
    DIR/images.json            {image_id: file name}; image ids are 1, 2, ... in sorted file-name order

Only detections scoring at least ``--score-threshold`` are written. Shape letters: ``n`` detections kept,
``H``/``W`` image size.
"""
import json
import os

import cv2
import numpy as np

from mrcnn_tf import inference, runs, visualize
from mrcnn_tf.data.images import IMAGE_EXTENSIONS, read_rgb_image
from mrcnn_tf.errors import ConfigError, DataError
from mrcnn_tf.evaluation.coco import to_coco_results
from mrcnn_tf.evaluation.records import ImageRecord

SAVED_MODEL_FILE = "saved_model.pb"


def load_detector(model_dir):
    """A function ``[H, W, 3]`` uint8 RGB -> ``detect``-style dict (``boxes`` ``[n, 4]`` yxyx in the image's
    pixels, ``scores`` ``[n]``, ``classes`` ``[n]``, ``masks`` ``[n, H, W]`` uint8) from an export folder
    (``mrcnn_tf.export``) or a run folder (``mrcnn_tf.runs``). ConfigError when ``model_dir`` is neither."""
    if os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
        return _export_detector(model_dir)
    if os.path.isfile(runs.path(model_dir, runs.CONFIG_FILE)):
        model = runs.load_run(model_dir)
        return lambda image: inference.detect(model, image)
    raise ConfigError(f"{model_dir}: expected an export folder (with {SAVED_MODEL_FILE}) or a run folder "
                      f"(with {runs.CONFIG_FILE} and {runs.WEIGHTS_FILE})")


def _export_detector(export_dir):
    import tensorflow as tf

    serve = tf.saved_model.load(export_dir).signatures["serving_default"]

    def detect(image):
        outputs = serve(images=tf.constant(image[None]))
        count = int(outputs["num_detections"][0])
        return {key: outputs[key][0, :count].numpy() for key in ("boxes", "scores", "classes", "masks")}

    return detect


def list_images(path):
    """The image files of the folder ``path`` sorted by name, or ``[path]`` for one file. DataError when
    there are none, or when two files of the folder share a stem (their outputs would overwrite each other)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such image file or folder")
    names = sorted(name for name in os.listdir(path)
                   if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    stems = [os.path.splitext(name)[0] for name in names]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise DataError(f"{path}: several images share the stem(s) {repeated}; expected one file per stem")
    if not names:
        raise DataError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(path, name) for name in names]


def instance_map(masks):
    """``[n, H, W]`` 0/1 masks, best score first -> ``[H, W]`` ids (0 background, ``i`` for mask ``i - 1``),
    uint8 or uint16; the best-scoring mask is painted last so that it stays on top."""
    dtype = np.uint8 if len(masks) < 256 else np.uint16
    ids = np.zeros(masks.shape[1:], dtype)
    for index in range(len(masks) - 1, -1, -1):
        ids[masks[index] > 0] = index + 1
    return ids


def keep_above(detections, score_threshold):
    """The detections (dict of ``[n, ...]`` arrays) whose score is at least ``score_threshold``."""
    keep = detections["scores"] >= score_threshold
    return {key: value[keep] for key, value in detections.items()}


def predict(model_dir, images_path, out_dir, score_threshold=0.5):
    """Detect on every image of ``images_path`` and write the outputs of the module doc into ``out_dir``.
    Returns the COCO results (list of dict)."""
    detect = load_detector(model_dir)
    for folder in ("masks", "overlays"):
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
    records, names = [], {}
    for image_id, path in enumerate(list_images(images_path), start=1):
        image = read_rgb_image(path)
        detections = keep_above(detect(image), score_threshold)
        stem = os.path.splitext(os.path.basename(path))[0]
        _write_png(os.path.join(out_dir, "masks", stem + ".png"), instance_map(detections["masks"]))
        overlay = visualize.draw_overlay(image, np.zeros((0,) + image.shape[:2], np.uint8), detections)
        visualize.write_png(os.path.join(out_dir, "overlays", stem + ".png"), overlay)
        names[image_id] = os.path.basename(path)
        records.append(_record(image_id, path, image, detections))
    results = to_coco_results(records)
    _write_json(os.path.join(out_dir, "predictions.json"), results)
    _write_json(os.path.join(out_dir, "images.json"), names)
    return results


def _record(image_id, path, image, detections):
    height, width = image.shape[:2]
    return ImageRecord(
        image_id=image_id, file_name=path, patient=None, height=height, width=width,
        gt_boxes=np.zeros((0, 4), np.float32), gt_masks=None, gt_crowd=np.zeros(0, bool),
        det_boxes=detections["boxes"], det_scores=detections["scores"], det_masks=detections["masks"],
    )


def _write_png(path, array):
    if not cv2.imwrite(path, array):
        raise OSError(f"could not write {path}")


def _write_json(path, content):
    with open(path, "w") as f:
        json.dump(content, f, indent=1)


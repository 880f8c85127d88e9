"""Predictions for a folder of images (or one image) from an export folder or a training run folder.

Usage: ``mrcnn-predict --model EXPORT_DIR_or_RUN_DIR --images PATH --out DIR [--score-threshold 0.5]``
(``mrcnn_tf.cli.predict``).

Writes, for the images of ``PATH`` (``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp``; grey or colour)::

    DIR/masks/<stem>.png         instance ids at the image's size: 0 background, i for detection i (1 = best
                                 score); where detections overlap the higher score wins. uint8, or uint16 past 255
    DIR/masks_colour/<stem>.png  the same ids in colour (one colour per instance, black background), to look at
    DIR/overlays/<stem>.png      the image enlarged, each detection's contour and "#i score", and a legend line
                                 (the threshold and the count, or "no tumour found")
    DIR/predictions.json         COCO results: image_id, category_id 1, bbox [x, y, w, h], score, RLE segmentation
    DIR/images.json              {image_id: file name}; image ids are 1, 2, ... in sorted file-name order

Only detections scoring at least ``--score-threshold`` are written. In a folder of the LGG layout, the masks
(``X_mask.tif`` beside ``X.tif``) are not images to predict on and are skipped. Shape letters: ``n`` detections
kept, ``H``/``W`` image size.
"""
import json
import os
import sys
import time

import cv2
import numpy as np
import tensorflow as tf

from mrcnn_tf import detectors, visualize
from mrcnn_tf.data.images import IMAGE_EXTENSIONS, read_rgb_image
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation.coco import to_coco_results
from mrcnn_tf.evaluation.records import ImageRecord

MASK_SUFFIX = "_mask"  # the LGG layout's masks: X_mask.tif beside X.tif


def list_images(path):
    """The image files of the folder ``path`` sorted by name, or ``[path]`` for one file, and the mask files
    skipped (``X_mask.<ext>`` beside an image ``X.<ext>``, the LGG layout). DataError when there are no images, or
    when two files of the folder share a stem (their outputs would overwrite each other)."""
    if os.path.isfile(path):
        return [path], []
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such image file or folder")
    names = sorted(name for name in os.listdir(path)
                   if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    stems = [os.path.splitext(name)[0] for name in names]
    masks = [name for name, stem in zip(names, stems)
             if stem.endswith(MASK_SUFFIX) and stem[: -len(MASK_SUFFIX)] in stems]
    names = [name for name in names if name not in masks]
    stems = [os.path.splitext(name)[0] for name in names]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise DataError(f"{path}: several images share the stem(s) {repeated}; expected one file per stem")
    if not names:
        raise DataError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.join(path, name) for name in names], [os.path.join(path, name) for name in masks]


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


def predict(model_dir, images_path, out_dir, score_threshold=0.5, progress=True, skip_bad=False, flip_tta=False):
    """Detect on every image of ``images_path`` and write the outputs of the module doc into ``out_dir``, with a
    line a image on stderr when ``progress``. An image that cannot be read or is too large is skipped and named
    (``skipped.json``) with ``skip_bad``; without it, the run stops there with a DataError naming it, after writing
    ``predictions.json`` and ``images.json`` for the images done. Returns a summary dict: ``images``,
    ``images_with_tumour``, ``tumours``, ``seconds``, ``skipped_masks``, ``skipped`` (``[(file, reason)]``) and
    ``results`` (the COCO results, list of dict). ``flip_tta``: a run folder's model with the test-time flip."""
    started = time.perf_counter()
    paths, masks = list_images(images_path)
    detect = detectors.load_detector(model_dir, flip_tta=flip_tta)
    for folder in ("masks", "masks_colour", "overlays"):
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
    records, names, skipped = [], {}, []
    try:
        for image_id, path in enumerate(paths, start=1):
            try:
                image, detections = _detect_file(detect, path, score_threshold)
            except DataError as error:
                if not skip_bad:
                    raise DataError(f"{error} (the {len(records)} images before it are written to {out_dir}; "
                                    "--skip-bad skips such files)") from error
                skipped.append((path, str(error)))
                if progress:
                    print(f"[{image_id}/{len(paths)}] {os.path.basename(path)}: skipped ({error})", file=sys.stderr)
                continue
            _write_outputs(out_dir, path, image, detections, score_threshold)
            names[image_id] = os.path.basename(path)
            records.append(_record(image_id, path, image, detections))
            if progress:
                count = len(detections["scores"])
                print(f"[{image_id}/{len(paths)}] {os.path.basename(path)}: "
                      f"{count} tumour{'' if count == 1 else 's'}", file=sys.stderr, flush=True)
    finally:  # what was done is kept, whatever stopped the loop
        results = to_coco_results(records)
        _write_json(os.path.join(out_dir, "predictions.json"), results)
        _write_json(os.path.join(out_dir, "images.json"), names)
        if skipped:
            _write_json(os.path.join(out_dir, "skipped.json"), [{"file": f, "reason": r} for f, r in skipped])
    return {"images": len(records), "images_with_tumour": sum(len(r.det_scores) > 0 for r in records),
            "tumours": len(results), "seconds": time.perf_counter() - started, "skipped_masks": len(masks),
            "skipped": skipped, "results": results}


def _detect_file(detect, path, score_threshold):
    """``(image, detections at or above score_threshold)`` of the file ``path``; DataError naming it when it
    cannot be read or the model refuses it (an export's input size limit)."""
    image = read_rgb_image(path)
    try:
        found = detect(image)
    except tf.errors.InvalidArgumentError as error:
        raise DataError(f"{path}: the model refused it ({error.message.splitlines()[0]})") from error
    return image, keep_above(found, score_threshold)


def summary_line(summary, out_dir):
    """What :func:`predict` did, in a line (and a line per skipped file)."""
    masks = f"; {summary['skipped_masks']} mask files skipped" if summary["skipped_masks"] else ""
    bad = summary.get("skipped", [])
    lines = [f"{summary['images']} images, {summary['tumours']} tumours found in {summary['images_with_tumour']} "
             f"of them, {summary['seconds']:.1f} s{masks}"
             + (f"; {len(bad)} unreadable files skipped" if bad else "") + f"; written to {out_dir}"]
    return "\n".join(lines + [f"skipped {path}: {reason}" for path, reason in bad])


def _write_outputs(out_dir, path, image, detections, score_threshold):
    """The mask PNGs (raw ids and colour) and the overlay of one image."""
    stem = os.path.splitext(os.path.basename(path))[0]
    ids = instance_map(detections["masks"])
    _write_png(os.path.join(out_dir, "masks", stem + ".png"), ids)
    visualize.write_png(os.path.join(out_dir, "masks_colour", stem + ".png"), visualize.colour_instances(ids))
    overlay = visualize.draw_prediction(image, detections, score_threshold)
    visualize.write_png(os.path.join(out_dir, "overlays", stem + ".png"), overlay)


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


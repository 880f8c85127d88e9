"""COCO files and COCO AP for :class:`~mrcnn_tf.evaluation.records.ImageRecord` lists, through pycocotools.

Records hold boxes ``[y1, x1, y2, x2]`` (exclusive end) and uint8 0/1 masks ``[H, W]``; COCO holds boxes
``[x, y, w, h]`` and masks as run-length encodings (RLE) whose ``counts`` are ``str`` so that they go into JSON.
This module is the only place the two meet; reading and validating COCO files and decoding their segmentations
belong to ``data.coco``, shared with the training reader. Evaluation is class-agnostic: every instance is the
tumour class, COCO category id 1.

Shape letters: ``G`` ground-truth instances, ``D`` detections, ``H``/``W`` an image's own height and width.
"""
import contextlib
import dataclasses
import io
import json
import os
import tempfile

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn_tf.data.coco import (annotation_name, has_segmentation, image_size, is_crowd, load_coco_file, read_json,
                                require_keys, segmentation_to_mask)
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation.records import ImageRecord

CATEGORY_ID = 1
GROUND_TRUTH_FILE = "coco_ground_truth.json"
DETECTIONS_FILE = "coco_detections.json"


def yxyx_to_xywh(boxes):
    """``[N, 4]`` ``[y1, x1, y2, x2]`` (exclusive end) -> ``[N, 4]`` float64 ``[x, y, w, h]``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], axis=1)


def xywh_to_yxyx(boxes):
    """``[N, 4]`` ``[x, y, w, h]`` -> ``[N, 4]`` float32 ``[y1, x1, y2, x2]`` (exclusive end)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    yxyx = np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 1] + boxes[:, 3], boxes[:, 0] + boxes[:, 2]], axis=1)
    return yxyx.astype(np.float32)


def encode_mask(mask):
    """``[H, W]`` 0/1 mask -> a COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    # pycocotools reads the array column-major; a C-ordered array would be encoded transposed.
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


# ---------------------------------------------------------------------------------------------------------------
# Records -> COCO dicts


def to_coco_ground_truth(records, category_name="tumour"):
    """A COCO ground-truth dict (``images``, ``categories``, ``annotations``) of ``records``.

    Each instance becomes one annotation of category 1 with ``bbox`` ``[x, y, w, h]`` from ``gt_boxes``, an RLE
    ``segmentation`` from ``gt_masks`` (none when ``gt_masks`` is None), ``area`` the mask's pixel count (the
    box area without masks) and ``iscrowd`` from ``gt_crowd``. An image of a record with a patient id carries it
    as ``patient`` (a field COCO tools ignore), so that the file scores again by patient. Raises ValueError on a
    repeated ``image_id``.
    """
    image_ids = [int(record.image_id) for record in records]
    if len(set(image_ids)) != len(image_ids):
        raise ValueError(f"image ids repeat across records: {sorted(image_ids)}")
    images = [{"id": int(r.image_id), "file_name": r.file_name, "height": int(r.height), "width": int(r.width),
               **({} if r.patient is None else {"patient": r.patient})} for r in records]
    annotations = []
    for record in records:
        # Ids start at 1: COCOeval stores the matched ground-truth id in a zero-initialised array, so a
        # ground truth with id 0 would turn its true positive into a false positive.
        annotations.extend(_ground_truth_annotations(record, first_id=len(annotations) + 1))
    return {"images": images, "categories": [{"id": CATEGORY_ID, "name": category_name}],
            "annotations": annotations}


def _ground_truth_annotations(record, first_id):
    """The COCO annotations (list of dict) of one record's ``G`` instances, numbered from ``first_id``."""
    annotations = []
    for index, box in enumerate(yxyx_to_xywh(record.gt_boxes)):
        annotation = {"id": first_id + index, "image_id": int(record.image_id), "category_id": CATEGORY_ID,
                      "bbox": [float(v) for v in box], "area": float(box[2] * box[3]),
                      "iscrowd": int(bool(record.gt_crowd[index]))}
        if record.gt_masks is not None:
            annotation["segmentation"] = encode_mask(record.gt_masks[index])
            annotation["area"] = float(np.count_nonzero(record.gt_masks[index]))
        annotations.append(annotation)
    return annotations


def to_coco_results(records):
    """COCO results (list of dict: ``image_id``, ``category_id`` 1, ``bbox`` ``[x, y, w, h]``, ``score``, and
    an RLE ``segmentation`` for records whose ``det_masks`` is not None) of every record's detections."""
    results = []
    for record in records:
        for index, box in enumerate(yxyx_to_xywh(record.det_boxes)):
            result = {"image_id": int(record.image_id), "category_id": CATEGORY_ID,
                      "bbox": [float(v) for v in box], "score": float(record.det_scores[index])}
            if record.det_masks is not None:
                result["segmentation"] = encode_mask(record.det_masks[index])
            results.append(result)
    return results


# ---------------------------------------------------------------------------------------------------------------
# COCO AP


def coco_ap(records, workdir=None):
    """COCO AP of ``records``' detections against their ground truth, with pycocotools.

    Writes ``coco_ground_truth.json`` and ``coco_detections.json`` to ``workdir`` (kept) or to a temporary
    folder (removed). Returns ``{"box": {"ap", "ap50", "ap75"}, "mask": {...} or None}``: AP over IoU 0.50:0.95,
    at 0.50 and at 0.75 (100 detections per image at most, all areas). ``mask`` is None when any record lacks
    ``gt_masks`` or ``det_masks``. A figure is None when there is no non-crowd ground truth to score against,
    and 0.0 when there is some but no detection at all.
    """
    with _folder(workdir) as folder:
        ground_truth_path = _write_json(os.path.join(folder, GROUND_TRUTH_FILE), to_coco_ground_truth(records))
        detections_path = _write_json(os.path.join(folder, DETECTIONS_FILE), to_coco_results(records))
        with_masks = all(r.gt_masks is not None and r.det_masks is not None for r in records)
        box = _evaluate(ground_truth_path, detections_path, "bbox", records)
        mask = _evaluate(ground_truth_path, detections_path, "segm", records) if with_masks else None
    return {"box": box, "mask": mask}


@contextlib.contextmanager
def _folder(workdir):
    """Yield ``workdir`` (created if needed), or a temporary folder removed on exit when it is None."""
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="coco_ap_") as folder:
        yield folder


def _write_json(path, content):
    with open(path, "w") as file:
        json.dump(content, file)
    return path


def _evaluate(ground_truth_path, detections_path, iou_type, records):
    """``{"ap", "ap50", "ap75"}`` (float or None) of COCOeval ``iou_type`` (``"bbox"`` or ``"segm"``)."""
    if not any(len(record.det_scores) for record in records):
        # COCO.loadRes cannot take an empty list; with no detection every AP is 0 (None without ground truth).
        figure = 0.0 if any(record.has_tumour for record in records) else None
        return {"ap": figure, "ap50": figure, "ap75": figure}
    # pycocotools reports progress and the summary table on stdout; callers get the figures instead.
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(ground_truth_path)
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(detections_path), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"ap": _figure(stats[0]), "ap50": _figure(stats[1]), "ap75": _figure(stats[2])}


def _figure(stat):
    """pycocotools' -1 (nothing to score: no non-crowd ground truth) -> None; any other value -> float."""
    return None if stat < 0 else float(stat)


# ---------------------------------------------------------------------------------------------------------------
# COCO files -> records


def load_coco_ground_truth(path):
    """Read a COCO ground-truth file (e.g. an annotation tool's export) into records without detections.

    Returns ``(records, category_names)``: one ImageRecord per image, in file order, its patient the image's
    ``patient`` field (:func:`to_coco_ground_truth`; None where absent), with ``gt_boxes`` from
    ``bbox``, ``gt_masks`` from polygon or RLE ``segmentation`` (None for every record when no annotation has
    one), ``gt_crowd`` from ``iscrowd`` (0 when absent); empty ``det_*`` arrays and ``det_masks`` None. Every
    category is merged into the tumour class; ``category_names`` lists the categories that annotations use,
    by id (categories no annotation uses, such as a tool's super-category, are dropped).
    Raises DataError naming ``path`` for invalid JSON, missing keys, repeated ids, an annotation of an unknown
    image or category (the checks of ``data.coco.load_coco_file``), and naming also the image or the annotation
    for an image size that is not a positive integer or an invalid segmentation (``data.coco.image_size`` and
    ``segmentation_to_mask``): a ground truth is used whole or not at all.
    """
    coco_file = load_coco_file(path)
    names = [coco_file.categories[category_id] for category_id in coco_file.used_category_ids()]
    with_masks = any(has_segmentation(a) for annotations in coco_file.annotations.values() for a in annotations)
    records = [_ground_truth_record(path, image, coco_file.annotations[image_id], with_masks)
               for image_id, image in coco_file.images.items()]
    return records, names


def _ground_truth_record(path, image, annotations, with_masks):
    """The ImageRecord of one COCO image dict and its ``G`` annotations, without detections."""
    height, width = image_size(path, image)
    masks = None
    if with_masks:
        masks = np.zeros((len(annotations), height, width), np.uint8)
        for index, annotation in enumerate(annotations):
            if not has_segmentation(annotation):
                raise DataError(f"{path}: the annotation {annotation.get('id')!r} of image {image['id']!r} has no "
                                "segmentation, while others do")
            masks[index] = segmentation_to_mask(path, annotation["segmentation"], height, width,
                                                annotation_name(annotation, image["id"]))
    boxes = xywh_to_yxyx([annotation["bbox"] for annotation in annotations])
    crowd = np.array([is_crowd(annotation) for annotation in annotations], bool)
    patient = image.get("patient")
    return ImageRecord(image_id=image["id"], file_name=image["file_name"],
                       patient=None if patient is None else str(patient), height=height,
                       width=width, gt_boxes=boxes, gt_masks=masks, gt_crowd=crowd,
                       det_boxes=np.zeros((0, 4), np.float32), det_scores=np.zeros((0,), np.float32), det_masks=None)


def attach_coco_detections(records, path):
    """Records like ``records`` with their detections read from the COCO results file ``path``.

    ``path`` holds a list of dicts (``image_id``, ``bbox`` ``[x, y, w, h]``, ``score``, and optionally an RLE
    ``segmentation``; ``category_id`` is ignored, evaluation being class-agnostic). Each returned record has
    ``det_boxes`` ``[D, 4]`` float32 and ``det_scores`` ``[D]`` float32 best first, and ``det_masks``
    ``[D, H, W]`` uint8, or None for every record when results exist and none carries a segmentation (an empty
    file against ground truth with masks gives empty masks: a model that found nothing scores 0, not n/a). The
    input records
    are not modified. Raises DataError naming ``path`` for invalid JSON, a result lacking a key or of an
    image_id that no record has, and an invalid segmentation (``data.coco.segmentation_to_mask``).
    """
    results = read_json(path)
    if not isinstance(results, list):
        raise DataError(f"{path}: a COCO results file should hold a JSON list, got {type(results).__name__}")
    by_image = {record.image_id: [] for record in records}
    for index, result in enumerate(results):
        require_keys(path, f"results[{index}]", result, ("image_id", "bbox", "score"))
        if result["image_id"] not in by_image:
            raise DataError(f"{path}: results[{index}] refers to image_id {result['image_id']!r}, which is not in "
                            "the ground truth")
        by_image[result["image_id"]].append(result)
    with_masks = (any(has_segmentation(result) for result in results)
                  or (not results and all(record.gt_masks is not None for record in records)))
    return [_with_detections(path, record, by_image[record.image_id], with_masks) for record in records]


def _with_detections(path, record, results, with_masks):
    """A copy of ``record`` whose ``D`` detections are ``results`` (COCO result dicts), sorted best first."""
    scores = np.array([float(result["score"]) for result in results], np.float32)
    # Stable, so that equal scores keep the file's order.
    order = np.argsort(-scores, kind="stable")
    results, scores = [results[i] for i in order], scores[order]
    masks = None
    if with_masks:
        masks = np.zeros((len(results), record.height, record.width), np.uint8)
        for index, result in enumerate(results):
            require_keys(path, f"a result of image {record.image_id!r}", result, ("segmentation",))
            masks[index] = segmentation_to_mask(path, result["segmentation"], record.height, record.width,
                                                f"a result of image {record.image_id!r}")
    return dataclasses.replace(record, det_boxes=xywh_to_yxyx([result["bbox"] for result in results]),
                               det_scores=scores, det_masks=masks)

"""Evaluation records of tiny slices whose masks fill rectangles, for tests with answers worked out by hand.

Rectangles are ``(y1, x1, y2, x2)`` with an exclusive end (the package's box convention), and masks fill their
boxes.
"""
import itertools

import numpy as np

from mrcnn_tf.evaluation.records import ImageRecord

SIZE = 8
_IMAGE_IDS = itertools.count(1)
TOP_LEFT, BOTTOM_RIGHT, TOP_RIGHT, WHOLE = (0, 0, 4, 4), (4, 4, 8, 8), (0, 4, 4, 8), (0, 0, 8, 8)


def masks(rects, size=SIZE):
    """``[N, size, size]`` uint8 masks filling each rectangle."""
    out = np.zeros((len(rects), size, size), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(out, rects):
        mask[y1:y2, x1:x2] = 1
    return out


def record(patient, gt_rects=(), det_rects=(), scores=(), size=SIZE, crowd=None):
    """An ImageRecord of a new image id (file ``<id>.png``) with rectangle ground truth and detections."""
    image_id = next(_IMAGE_IDS)
    crowd = np.zeros(len(gt_rects), bool) if crowd is None else np.asarray(crowd, bool)
    return ImageRecord(
        image_id=image_id, file_name=f"{image_id}.png", patient=patient, height=size, width=size,
        gt_boxes=np.asarray(gt_rects, np.float32).reshape(-1, 4), gt_masks=masks(gt_rects, size), gt_crowd=crowd,
        det_boxes=np.asarray(det_rects, np.float32).reshape(-1, 4), det_scores=np.asarray(scores, np.float32),
        det_masks=masks(det_rects, size))

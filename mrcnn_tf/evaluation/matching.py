"""Matching detections to ground-truth instances by IoU, in NumPy, for AP and IoU summaries.

Boxes are ``[y1, x1, y2, x2]`` in pixels with an exclusive end (the convention of ``records``), so a box's
area is ``(y2 - y1) * (x2 - x1)``. Masks are ``[H, W]`` with any non-zero value inside.

Shape letters: ``N``, ``M`` two sets of boxes or masks; ``D`` detections; ``G`` ground-truth instances;
``H, W`` an image's own height and width.
"""
import numpy as np

# float32 counts pixels exactly only up to 2**24; larger images take float64 for the overlap products.
_FLOAT32_EXACT_PIXELS = 2 ** 24


def _safe_ratio(numerator, denominator):
    """``numerator / denominator`` element-wise, 0 where the denominator is 0 (empty union: no overlap)."""
    out = np.zeros(np.broadcast(numerator, denominator).shape, np.float64)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def box_iou_matrix(a, b):
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
      a: ``[N, 4]`` boxes ``[y1, x1, y2, x2]``, exclusive end, any real dtype.
      b: ``[M, 4]`` boxes, same convention.
    Returns:
      ``[N, M]`` float64 in ``[0, 1]``; 0 where the union is empty (two degenerate boxes).
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    # Inverted boxes count as empty rather than as negative areas.
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)  # [N]
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # [M]
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    size = np.clip(bottom_right - top_left, 0, None)  # [N, M, 2]
    intersection = size[..., 0] * size[..., 1]  # [N, M]
    union = area_a[:, None] + area_b[None, :] - intersection
    return _safe_ratio(intersection, union)


def mask_iou_matrix(a, b):
    """IoU of every mask of ``a`` with every mask of ``b``, as one matrix product of flattened masks.

    Args:
      a: ``[N, H, W]`` masks, non-zero = inside (uint8 0/1, bool, or 0/255 all work).
      b: ``[M, H, W]`` masks of the same ``H, W``.
    Returns:
      ``[N, M]`` float64 in ``[0, 1]``; 0 where both masks are empty.
    Raises:
      ValueError: ``a`` and ``b`` are not 3-D, or their ``H, W`` differ.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"masks must be [N, H, W] and [M, H, W], got shapes {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"masks of different sizes: {a.shape[1:]} and {b.shape[1:]}, expected the same H, W")
    pixels = a.shape[1] * a.shape[2]
    dtype = np.float32 if pixels < _FLOAT32_EXACT_PIXELS else np.float64
    flat_a = (a != 0).reshape(len(a), pixels).astype(dtype)  # [N, H*W]
    flat_b = (b != 0).reshape(len(b), pixels).astype(dtype)  # [M, H*W]
    intersection = (flat_a @ flat_b.T).astype(np.float64)  # [N, M], exact pixel counts
    union = flat_a.sum(axis=1, dtype=np.float64)[:, None] + flat_b.sum(axis=1, dtype=np.float64)[None, :]
    return _safe_ratio(intersection, union - intersection)


def record_iou(record, kind):
    """``[D, G]`` IoU of an ImageRecord's detections with its ground truth.

    Args:
      record: an ImageRecord. kind: ``"box"`` (by ``det_boxes`` / ``gt_boxes``) or ``"mask"`` (by ``det_masks`` /
      ``gt_masks``, which must not be None).
    Returns:
      ``[D, G]`` float64.
    Raises:
      ValueError: an unknown ``kind``, or ``"mask"`` for a record without masks.
    """
    if kind == "box":
        return box_iou_matrix(record.det_boxes, record.gt_boxes)
    if kind != "mask":
        raise ValueError(f"kind must be 'box' or 'mask', got {kind!r}")
    if record.det_masks is None or record.gt_masks is None:
        raise ValueError(f"{record.file_name}: detections and ground truth both need masks for a mask IoU")
    return mask_iou_matrix(record.det_masks, record.gt_masks)


def _check_match_inputs(scores, iou, crowd):
    """The inputs of :func:`match_detections` as arrays ``[D]`` float64, ``[D, G]`` float64, ``[G]`` bool."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    crowd = np.asarray(crowd, bool).reshape(-1)
    iou = np.asarray(iou, np.float64)
    if iou.size == 0 and len(scores) * len(crowd) == 0:
        iou = iou.reshape(len(scores), len(crowd))  # an empty list or [0] array carries no [D, G] shape
    if iou.shape != (len(scores), len(crowd)):
        raise ValueError(f"iou must be [D, G] = [{len(scores)}, {len(crowd)}] for {len(scores)} scores and "
                         f"{len(crowd)} crowd flags, got shape {iou.shape}")
    return scores, iou, crowd


def match_detections(scores, iou, crowd, iou_threshold=0.5):
    """Greedy matching of one image's detections to its ground truth, best score first.

    Each detection, in descending score order (a stable sort: equal scores keep their input order), takes,
    among the non-crowd ground truths not matched yet with IoU ``>= iou_threshold``, the one of highest IoU
    (the lowest index on equal IoU). A detection that takes none but has IoU ``>= iou_threshold`` with a crowd
    region is ignored (neither TP nor FP); crowd regions can absorb any number of detections. Any other
    detection is a false positive.

    Args:
      scores: ``[D]`` detection scores, in any order.
      iou: ``[D, G]`` IoU of each detection with each ground-truth instance.
      crowd: ``[G]`` bool, True for crowd regions.
      iou_threshold: the least IoU of a match (inclusive).
    Returns:
      is_tp: ``[D]`` bool. is_ignored: ``[D]`` bool. matched_gt: ``[D]`` int64 index of the ground truth a
      true positive took, ``-1`` for the others. All in the input order of the detections.
    Raises:
      ValueError: ``iou`` is not ``[D, G]``.
    """
    scores, iou, crowd = _check_match_inputs(scores, iou, crowd)
    num_detections = len(scores)
    is_tp = np.zeros(num_detections, bool)
    is_ignored = np.zeros(num_detections, bool)
    matched_gt = np.full(num_detections, -1, np.int64)
    available = ~crowd  # [G] non-crowd ground truths still free
    for d in np.argsort(-scores, kind="stable"):
        overlaps = iou[d] >= iou_threshold  # [G]
        candidates = available & overlaps
        if candidates.any():
            g = int(np.argmax(np.where(candidates, iou[d], -np.inf)))
            is_tp[d], matched_gt[d], available[g] = True, g, False
        elif (crowd & overlaps).any():
            is_ignored[d] = True
    return is_tp, is_ignored, matched_gt

"""Average precision by the paper's equation (3): all-point interpolation over the pooled detections.

The detections of all images are pooled and ranked by score. Detections with EQUAL scores form one group and
the precision-recall curve gets a point only after each whole group, because a model that gives two
detections the same score does not rank them: counting them one by one would make AP depend on the input
order of ties (a TP before an FP of the same score would score higher than the other way round).

Shape letters: ``D`` detections (pooled over images), ``P`` points of a precision-recall curve (one per
group of equal scores), ``U`` unique recall values.
"""
import numpy as np

from mrcnn_tf.evaluation.matching import match_detections, record_iou

NO_GROUND_TRUTH = "no ground-truth instances"
NO_MASKS = "no masks"
KINDS = ("box", "mask")


def _ranked(scores, is_tp, is_ignored):
    """Non-ignored detections sorted by descending score: scores ``[D']`` float64, is_tp ``[D']`` bool."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, bool).reshape(-1)
    is_ignored = np.zeros(len(scores), bool) if is_ignored is None else np.asarray(is_ignored, bool).reshape(-1)
    if not len(scores) == len(is_tp) == len(is_ignored):
        raise ValueError(f"scores, is_tp and is_ignored must have one entry per detection, got lengths "
                         f"{len(scores)}, {len(is_tp)}, {len(is_ignored)}")
    keep = ~is_ignored
    order = np.argsort(-scores[keep], kind="stable")
    return scores[keep][order], is_tp[keep][order]


def precision_recall(scores, is_tp, num_gt, is_ignored=None):
    """Precision and recall after each group of equal scores, best score first.

    Args:
      scores: ``[D]`` scores of the detections of all images.
      is_tp: ``[D]`` bool, True for a true positive (from :func:`match_detections`).
      num_gt: int > 0, the number of non-crowd ground-truth instances of all images.
      is_ignored: ``[D]`` bool or None; ignored detections (matched to crowd regions) are removed first.
    Returns:
      precision ``[P]``, recall ``[P]`` and thresholds ``[P]`` (the group's score), float64, in descending
      score order; recall is non-decreasing. All empty when no detection is left.
    Raises:
      ValueError: ``num_gt <= 0`` (recall is undefined), fewer ground truths than true positives, or inputs
      of different lengths.
    """
    if num_gt <= 0:
        raise ValueError(f"num_gt must be > 0 for a recall, got {num_gt}")
    scores, is_tp = _ranked(scores, is_tp, is_ignored)
    if is_tp.sum() > num_gt:
        raise ValueError(f"{int(is_tp.sum())} true positives but only {num_gt} ground-truth instances")
    cum_tp = np.cumsum(is_tp)  # [D']
    # The last detection of each group of equal scores: where the next score differs, and the very last one.
    group_ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True)) if len(scores) else np.zeros(0, int)
    precision = cum_tp[group_ends] / (group_ends + 1.0)
    recall = cum_tp[group_ends] / float(num_gt)
    return precision, recall, scores[group_ends]


def interpolated_curve(precision, recall):
    """The curve that equation (3) sums: each unique recall with its interpolated precision.

    Args:
      precision, recall: ``[P]`` from :func:`precision_recall` (recall non-decreasing).
    Returns:
      recall ``[U]`` (strictly increasing) and ``p_interp`` ``[U]``, float64, where ``p_interp(r)`` is the
      highest precision at any recall ``>= r``.
    """
    precision, recall = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    p_interp = np.maximum.accumulate(precision[::-1])[::-1]  # [P], monotone from the right
    # The first point of each recall value: its p_interp already covers the later points of the same recall.
    first = np.flatnonzero(np.insert(recall[1:] != recall[:-1], 0, True)) if len(recall) else np.zeros(0, int)
    return recall[first], p_interp[first]


def average_precision(scores, is_tp, num_gt, is_ignored=None):
    """AP by equation (3): sum over unique recalls of ``(r_{n+1} - r_n) * p_interp(r_{n+1})``, ``r_0 = 0``.

    Args:
      scores, is_tp, is_ignored: ``[D]`` as in :func:`precision_recall`, all images pooled.
      num_gt: int >= 0, the non-crowd ground-truth instances of all images.
    Returns:
      dict(ap=float or None, reason=str or None (why ap is None), precision=list, recall=list (the
      interpolated curve of :func:`interpolated_curve`, whose rectangles make AP), num_gt=int,
      num_detections=int (not ignored)). ap is None without ground truth (never 0 or 1: there is nothing
      to find), 0.0 when there are ground truths but no detection or no true positive.
    """
    ranked_scores, _ = _ranked(scores, is_tp, is_ignored)
    result = dict(ap=None, reason=None, precision=[], recall=[], num_gt=int(num_gt),
                  num_detections=len(ranked_scores))
    if num_gt <= 0:
        return {**result, "reason": NO_GROUND_TRUTH}
    precision, recall, _ = precision_recall(scores, is_tp, num_gt, is_ignored)
    recall, p_interp = interpolated_curve(precision, recall)
    widths = np.diff(recall, prepend=0.0)  # [U], r_{n+1} - r_n from r_0 = 0
    return {**result, "ap": float(np.sum(widths * p_interp)), "precision": p_interp.tolist(),
            "recall": recall.tolist()}


def record_matches(record, kind, iou_threshold=0.5):
    """One image's detections judged at one IoU threshold, as equation (3) pools them.

    A detection's status depends only on its own image, so these can be computed once per image and re-pooled
    (the bootstrap of ``intervals`` does).

    Args:
      record: an ImageRecord. kind: ``"box"`` or ``"mask"``. iou_threshold: the least IoU of a true positive.
    Returns:
      scores ``[D]`` float64, is_tp ``[D]`` bool, is_ignored ``[D]`` bool (matched to a crowd region), in the
      record's detection order.
    """
    is_tp, is_ignored, _ = match_detections(record.det_scores, record_iou(record, kind), record.gt_crowd,
                                            iou_threshold)
    return np.asarray(record.det_scores, np.float64).reshape(-1), is_tp, is_ignored


def has_masks(records):
    """True when every record carries detection and ground-truth masks (mask figures need both)."""
    return all(r.det_masks is not None and r.gt_masks is not None for r in records)


def dataset_ap(records, kind, iou_threshold=0.5):
    """Box or mask AP of a dataset at one IoU threshold, every detection counted whatever its score.

    Args:
      records: list of ImageRecord.
      kind: ``"box"`` or ``"mask"``.
      iou_threshold: the least IoU of a true positive.
    Returns:
      the dict of :func:`average_precision`; for ``"mask"`` with any record lacking detection or ground-truth
      masks, ap None with reason ``"no masks"``.
    Raises:
      ValueError: an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    num_gt = int(sum((~r.gt_crowd).sum() for r in records))
    if kind == "mask" and not has_masks(records):
        return dict(ap=None, reason=NO_MASKS, precision=[], recall=[], num_gt=num_gt,
                    num_detections=int(sum(len(r.det_scores) for r in records)))
    parts = [record_matches(record, kind, iou_threshold) for record in records]
    scores = np.concatenate([np.zeros(0)] + [part[0] for part in parts])
    is_tp = np.concatenate([np.zeros(0, bool)] + [part[1] for part in parts])
    is_ignored = np.concatenate([np.zeros(0, bool)] + [part[2] for part in parts])
    return average_precision(scores, is_tp, num_gt, is_ignored)

"""The paper's image-level confusion matrix (Table 1 layout), a localisation-aware one beside it, and the figures
of equations (1) and (2).

TN only exists at the image level (a tumour-free image where nothing is predicted), so the matrix counts
images, not instances: rows are the prediction, columns the truth.

|                    | actual positive | actual negative |
|--------------------|-----------------|-----------------|
| predicted positive | TP              | FP              |
| predicted negative | FN              | TN              |

Shape letters: ``R`` records (images), ``D`` detections, ``G`` ground-truth instances.
"""
import numpy as np

from mrcnn_tf.evaluation.matching import record_iou

CELLS = ("tp", "fp", "fn", "tn")  # the column order of the ``[R, 4]`` cell arrays


def image_level_cells(records, score_threshold):
    """Each image's cell of Table 1, the paper's count.

    An image is predicted positive when it has at least one detection scoring ``>= score_threshold``
    (wherever it lies: this count does not look at overlap), actually positive when ``record.has_tumour``
    (a non-crowd ground-truth instance).

    Args:
      records: list of ImageRecord.
      score_threshold: float, inclusive.
    Returns:
      ``[R, 4]`` int64, one 1 per row, columns in ``CELLS`` order.
    """
    cells = np.zeros((len(records), len(CELLS)), np.int64)
    for row, record in zip(cells, records):
        predicted = len(record.detections_above(score_threshold)) > 0
        actual = record.has_tumour
        cell = ("tp" if actual else "fp") if predicted else ("fn" if actual else "tn")
        row[CELLS.index(cell)] = 1
    return cells


def image_level_counts(records, score_threshold):
    """The four cells of Table 1 summed over ``records`` (:func:`image_level_cells`).

    Returns:
      dict(tp=int, fp=int, fn=int, tn=int), summing to ``len(records)``.
    """
    return _counts(image_level_cells(records, score_threshold))


def _counts(cells):
    """``[R, 4]`` cells summed into dict(tp, fp, fn, tn) of ints."""
    return {name: int(total) for name, total in zip(CELLS, cells.sum(axis=0))}


def _finds_a_tumour(record, score_threshold, iou_threshold, kind):
    """True when a detection scoring ``>= score_threshold`` has IoU ``>= iou_threshold`` with a non-crowd
    ground-truth instance (which is exactly when the greedy matching of ``match_detections`` makes a TP)."""
    keep = record.detections_above(score_threshold)
    iou = record_iou(record, kind)[keep][:, ~record.gt_crowd]  # [D', G'] kept detections x tumour regions
    return bool((iou >= iou_threshold).any())


def localised_cells(records, score_threshold, iou_threshold=0.5, kind="mask"):
    """Each image's cells of the localisation-aware count: a tumour slice is a TP only where it was found in the
    right place.

    It differs from :func:`image_level_cells` only on the tumour slices that have detections scoring
    ``>= score_threshold`` all of which miss every true region (IoU ``< iou_threshold``): the paper's count calls
    such a slice TP; here it is both FN (the tumour was not found) and FP (a false alarm was raised), row
    ``(0, 1, 1, 0)``. So TP + FP is still the number of slices called positive, TP + FN the number with tumour,
    and TN (and the tumour-free slices' FP) are the paper's.

    Args:
      records: list of ImageRecord. score_threshold: float, inclusive. iou_threshold: the least IoU of a match.
      kind: ``"mask"`` (mask IoU) or ``"box"`` (box IoU, for detections without masks).
    Returns:
      ``[R, 4]`` int64, columns in ``CELLS`` order.
    """
    cells = image_level_cells(records, score_threshold)
    tp = CELLS.index("tp")
    for row, record in zip(cells, records):
        if row[tp] and not _finds_a_tumour(record, score_threshold, iou_threshold, kind):
            row[:] = [0, 1, 1, 0]
    return cells


def localised_counts(records, score_threshold, iou_threshold=0.5, kind="mask"):
    """The localisation-aware count (:func:`localised_cells`) with its precision, recall and F1.

    Returns:
      dict(tp, fp, fn, tn, mislocated (tumour slices counted both FN and FP), precision, recall, f1). The cells
      sum to ``len(records) + mislocated``; accuracy and specificity are left out (specificity is the paper's
      count's: tumour-free slices are counted the same way).
    """
    cells = localised_cells(records, score_threshold, iou_threshold, kind)
    counts = _counts(cells)
    figures = metrics_from_counts(**counts)
    mislocated = int((cells[:, CELLS.index("fp")] & cells[:, CELLS.index("fn")]).sum())
    return {**counts, "mislocated": mislocated, **{k: figures[k] for k in ("precision", "recall", "f1")}}


def f1_best_threshold(records, min_precision=0.0):
    """The score threshold that maximises the image-level F1 of ``records`` (chosen on a validation split),
    among the thresholds whose precision is at least ``min_precision`` (a user who must keep false alarms rare
    trades recall for precision).

    An image is predicted positive at threshold ``t`` when its best detection scores ``>= t``, so the only
    thresholds that give different matrices are the images' best scores; each is tried, and among equal F1s the
    highest threshold wins (fewer false positives for the same F1). When no threshold reaches ``min_precision``,
    the most precise one is chosen (then the best F1), marked ``min_precision_met=False``.

    Args:
      records: list of ImageRecord.
      min_precision: float in [0, 1].
    Returns:
      the operating point (:func:`operating_points`) of the chosen threshold, with ``min_precision`` and
      ``min_precision_met``; None when no record has a detection and a tumour (F1 is 0 or undefined at every
      threshold).
    """
    candidates = sorted({float(r.det_scores.max()) for r in records if len(r.det_scores)}, reverse=True)
    points = [p for p in operating_points(records, candidates) if p["f1"]]
    if not points:
        return None
    precise = [p for p in points if p["precision"] >= min_precision]
    if precise:  # max() keeps the first of equal F1s: the highest threshold
        best = max(precise, key=lambda p: p["f1"])
    else:
        best = max(points, key=lambda p: (p["precision"], p["f1"]))
    return dict(best, min_precision=float(min_precision), min_precision_met=bool(precise))


def operating_points(records, thresholds):
    """The image-level matrix and its figures at each score threshold: the precision / recall trade-off a user
    picks an operating point from (on a validation split; picked on the test split it would be optimistic).

    Args:
      records: list of ImageRecord.
      thresholds: iterable of floats.
    Returns:
      list of dict(threshold, tp, fp, fn, tn, precision, recall, f1, accuracy, specificity), one per threshold.
    """
    points = []
    for threshold in thresholds:
        counts = image_level_counts(records, threshold)
        points.append(dict(threshold=float(threshold), **counts, **metrics_from_counts(**counts)))
    return points


def _ratio(numerator, denominator):
    """``numerator / denominator`` as a float, None when the denominator is 0 (the figure is undefined)."""
    return None if denominator == 0 else float(numerator / denominator)


def metrics_from_counts(tp, fp, fn, tn):
    """Precision (1), recall (2), F1, accuracy and specificity of a confusion matrix.

    Args:
      tp, fp, fn, tn: non-negative ints (Table 1's cells).
    Returns:
      dict(precision, recall, f1, accuracy, specificity), each a float or None when its denominator is 0.
      F1 = 2PR / (P + R) is None when P or R is None, and 0.0 when P + R = 0.
      Example: the paper's test split (15, 1, 2, 7) gives P 0.9375, R 0.8824, F1 0.9091.
    Raises:
      ValueError: a negative count.
    """
    counts = dict(tp=tp, fp=fp, fn=fn, tn=tn)
    negative = {name: value for name, value in counts.items() if value < 0}
    if negative:
        raise ValueError(f"confusion counts must be >= 0, got {negative}")
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return dict(
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=_ratio(tp + tn, tp + fp + fn + tn),
        specificity=_ratio(tn, tn + fp),
    )

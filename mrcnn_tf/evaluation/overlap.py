"""Dice and IoU summaries of predicted against true tumour regions, at one score threshold.

A slice's prediction is the union of its detection masks scoring ``>=`` the score threshold; its truth is the
union of its non-crowd ground-truth masks (so a slice "with tumour" is exactly ``record.has_tumour``).
Shape letters: ``H, W`` an image's own height and width, ``D`` detections, ``G`` ground-truth instances.
"""
import collections

import numpy as np

from mrcnn_tf.evaluation.matching import mask_iou_matrix, match_detections


def predicted_union(record, score_threshold):
    """``[H, W]`` uint8 0/1: the union of the record's detection masks scoring ``>= score_threshold``.

    All zeros when no detection reaches the threshold.
    Raises:
      ValueError: the record's detections carry no masks.
    """
    if record.det_masks is None:
        raise ValueError(f"{record.file_name}: detections have no masks, expected det_masks [D, H, W]")
    keep = record.detections_above(score_threshold)
    if len(keep) == 0:
        return np.zeros((record.height, record.width), np.uint8)
    return (np.asarray(record.det_masks)[keep] != 0).any(axis=0).astype(np.uint8)


def _gt_union(record):
    """``[H, W]`` uint8 0/1: the union of the record's non-crowd ground-truth masks."""
    if record.gt_masks is None:
        raise ValueError(f"{record.file_name}: ground truth has no masks, expected gt_masks [G, H, W]")
    masks = np.asarray(record.gt_masks)[~record.gt_crowd]  # crowd regions are not tumour to find
    if len(masks) == 0:
        return np.zeros((record.height, record.width), np.uint8)
    return (masks != 0).any(axis=0).astype(np.uint8)


def _pixel_counts(pred, gt):
    """``(|A & B|, |A| + |B|)`` as ints for two ``[H, W]`` masks (non-zero = inside)."""
    pred, gt = np.asarray(pred) != 0, np.asarray(gt) != 0
    if pred.shape != gt.shape:
        raise ValueError(f"masks of different sizes: {pred.shape} and {gt.shape}, expected the same [H, W]")
    return int((pred & gt).sum()), int(pred.sum() + gt.sum())


def _dice_ratio(intersection, total):
    """``2 * intersection / total``; None when ``total`` is 0 (nothing predicted, nothing true)."""
    return None if total == 0 else 2.0 * intersection / total


def _mean(values):
    """Mean of the non-None ``values`` as a float; None when there are none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def dice(pred, gt):
    """Dice ``2|A & B| / (|A| + |B|)`` of two ``[H, W]`` masks (non-zero = inside).

    Returns:
      float in ``[0, 1]``; None when both masks are empty (no region to compare: neither 0 nor 1).
    Raises:
      ValueError: the masks differ in shape.
    """
    return _dice_ratio(*_pixel_counts(pred, gt))


def _slice_counts(records, score_threshold):
    """Per record ``(intersection, |pred| + |gt|, |pred|)``, ints, of the predicted and true unions."""
    counts = []
    for record in records:
        pred = predicted_union(record, score_threshold)
        intersection, total = _pixel_counts(pred, _gt_union(record))
        counts.append((intersection, total, int(pred.sum())))
    return counts


def _per_patient_dice(records, counts):
    """dict patient -> Dice of all its slices' pixels pooled (tumour-free slices included), None if empty.

    A record without a patient id is its own patient, keyed by its file name.
    """
    pooled = collections.defaultdict(lambda: [0, 0])  # patient -> [sum of intersections, sum of |A| + |B|]
    for record, (intersection, total, _) in zip(records, counts):
        pooled[record.patient_key][0] += intersection
        pooled[record.patient_key][1] += total
    return {patient: _dice_ratio(intersection, total) for patient, (intersection, total) in pooled.items()}


def dice_summary(records, score_threshold):
    """Dice of predicted against true tumour regions, per slice, per patient and over all pixels.

    Args:
      records: list of ImageRecord with det_masks and gt_masks.
      score_threshold: detections scoring ``>=`` this make the prediction.
    Returns:
      dict(per_slice=list of floats, one per slice with tumour in record order; per_slice_mean;
      per_patient=dict patient -> float or None (None: no tumour and nothing predicted in any slice);
      per_patient_mean (over the patients whose Dice is not None); global (every pixel of every slice pooled);
      empty_slices_correct (share of tumour-free slices with nothing predicted); n_slices_with_tumour;
      n_empty_slices). A mean or share is None when there is nothing to average.
    Raises:
      ValueError: a record without masks.
    """
    counts = _slice_counts(records, score_threshold)
    per_slice = [_dice_ratio(i, t) for r, (i, t, _) in zip(records, counts) if r.has_tumour]
    per_slice = [value for value in per_slice if value is not None]  # only a degenerate all-zero gt mask
    empty = [predicted == 0 for r, (_, _, predicted) in zip(records, counts) if not r.has_tumour]
    per_patient = _per_patient_dice(records, counts)
    return {
        "per_slice_mean": _mean(per_slice),
        "per_slice": per_slice,
        "per_patient_mean": _mean(per_patient.values()),
        "per_patient": per_patient,
        "global": _dice_ratio(sum(c[0] for c in counts), sum(c[1] for c in counts)),
        "empty_slices_correct": _mean(empty),
        "n_slices_with_tumour": sum(r.has_tumour for r in records),
        "n_empty_slices": len(empty),
    }


def _binary_iou(pred, gt):
    """IoU of two ``[H, W]`` masks; None when both are empty."""
    intersection, total = _pixel_counts(pred, gt)
    union = total - intersection
    return None if union == 0 else intersection / union


def _matched_ious(record, score_threshold, iou_threshold):
    """Mask IoUs ``[T]`` float64 of the true-positive pairs among the detections ``>= score_threshold``."""
    keep = record.detections_above(score_threshold)
    if record.det_masks is None or record.gt_masks is None:
        raise ValueError(f"{record.file_name}: detections and ground truth both need masks for a mask IoU")
    iou = mask_iou_matrix(np.asarray(record.det_masks)[keep], record.gt_masks)  # [D', G]
    is_tp, _, matched = match_detections(record.det_scores[keep], iou, record.gt_crowd, iou_threshold)
    return iou[np.flatnonzero(is_tp), matched[is_tp]]


def iou_summary(records, score_threshold, iou_threshold=0.5):
    """Mean mask IoU of the predicted against the true tumour region per slice, and of matched pairs.

    Args:
      records: list of ImageRecord with det_masks and gt_masks.
      score_threshold: only detections scoring ``>=`` this are matched or drawn.
      iou_threshold: the least IoU of a match.
    Returns:
      dict(image_mean: mean over slices with tumour of the IoU of :func:`predicted_union` with the ground-truth
      union (a missed slice counts 0: the figure comparable to the paper's IoU); matched_pair_mean: mean IoU of
      the true-positive (detection, ground truth) pairs of :func:`match_detections`, so never below
      ``iou_threshold``; n_matched_pairs: int). A mean is None when there is nothing to average.
    Raises:
      ValueError: a record without masks.
    """
    matched = np.concatenate([np.zeros(0)] + [_matched_ious(r, score_threshold, iou_threshold) for r in records])
    per_image = [_binary_iou(predicted_union(r, score_threshold), _gt_union(r)) for r in records if r.has_tumour]
    return dict(
        image_mean=_mean(per_image),
        matched_pair_mean=_mean(matched.tolist()),
        n_matched_pairs=int(len(matched)),
    )

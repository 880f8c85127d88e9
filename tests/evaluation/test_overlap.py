"""Tests for mrcnn_tf/evaluation/overlap.py: Dice and IoU summaries on 8 x 8 slices, pixels counted in comments.

Rectangles are ``(y1, x1, y2, x2)`` with an exclusive end: ``(0, 0, 2, 2)`` is 2 x 2 = 4 pixels.
"""
import itertools

import numpy as np
import pytest

from mrcnn_tf.evaluation.overlap import dice, dice_summary, iou_summary, predicted_union
from mrcnn_tf.evaluation.records import ImageRecord

SIZE = 8
_IMAGE_IDS = itertools.count(1)


def _masks(rects):
    """``[N, 8, 8]`` uint8 masks filling each rectangle."""
    masks = np.zeros((len(rects), SIZE, SIZE), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(masks, rects):
        mask[y1:y2, x1:x2] = 1
    return masks


def _record(name, patient, gt_rects=(), det_rects=(), scores=()):
    """An 8 x 8 ImageRecord whose masks fill the given rectangles (boxes match the rectangles)."""
    return ImageRecord(
        image_id=next(_IMAGE_IDS), file_name=name, patient=patient, height=SIZE, width=SIZE,
        gt_boxes=np.asarray(gt_rects, np.float32).reshape(-1, 4), gt_masks=_masks(gt_rects),
        gt_crowd=np.zeros(len(gt_rects), bool), det_boxes=np.asarray(det_rects, np.float32).reshape(-1, 4),
        det_scores=np.asarray(scores, np.float32), det_masks=_masks(det_rects))


# --- dice and predicted_union ---

def test_dice_by_hand():
    a, b = _masks([(0, 0, 2, 2), (1, 0, 3, 2)])  # 4 and 4 pixels sharing row 1: 2 pixels
    assert dice(a, b) == pytest.approx(2 * 2 / (4 + 4))
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0  # |A| + |B| = 4, no overlap
    assert dice(np.zeros_like(a), np.zeros_like(a)) is None  # nothing to compare: neither 0 nor 1
    with pytest.raises(ValueError, match="different sizes"):
        dice(a, np.zeros((SIZE, SIZE + 1)))


def test_predicted_union_keeps_scores_at_or_above_threshold():
    record = _record("u.png", None, det_rects=[(0, 0, 2, 2), (6, 6, 8, 8), (0, 1, 2, 4)], scores=[0.9, 0.4, 0.5])
    record.det_masks = record.det_masks * 255  # any non-zero value is inside
    union = predicted_union(record, 0.5)
    expected = np.zeros((SIZE, SIZE), np.uint8)
    expected[0:2, 0:4] = 1  # (0, 0, 2, 2) | (0, 1, 2, 4); the 0.4 detection is left out
    assert union.dtype == np.uint8
    np.testing.assert_array_equal(union, expected)
    np.testing.assert_array_equal(predicted_union(record, 0.95), np.zeros((SIZE, SIZE)))


def test_predicted_union_without_masks_raises():
    record = _record("nomask.png", None, det_rects=[(0, 0, 2, 2)], scores=[0.9])
    record.det_masks = None
    with pytest.raises(ValueError, match="nomask.png"):
        predicted_union(record, 0.5)
    with pytest.raises(ValueError, match="nomask.png"):
        dice_summary([record], 0.5)


# --- dice_summary ---

def _patients():
    """Two patients and one record without a patient; the Dice figures are worked out in the test below."""
    return [
        _record("a1.png", "A", [(0, 0, 2, 2)], [(0, 0, 2, 2)], [0.9]),  # gt 4, pred 4, overlap 4 -> 8/8 = 1
        _record("a2.png", "A", [(0, 0, 3, 4)], [(5, 5, 8, 8)], [0.3]),  # gt 12, detection below 0.5 -> 0/12 = 0
        _record("a3.png", "A", [], [(0, 0, 1, 2)], [0.8]),  # tumour-free, 2 false pixels
        _record("b1.png", "B", [(0, 0, 2, 2)], [(0, 0, 2, 4)], [0.7]),  # gt 4, pred 8, overlap 4 -> 8/12
        _record("x.png", None, [], [(0, 0, 8, 8)], [0.2]),  # tumour-free, only below 0.5: nothing predicted
    ]


def test_dice_summary_by_hand():
    summary = dice_summary(_patients(), 0.5)
    # Per slice with tumour: [1, 0, 2/3] -> mean 5/9.
    np.testing.assert_allclose(summary["per_slice"], [1, 0, 2 / 3])
    assert summary["per_slice_mean"] == pytest.approx(5 / 9)
    # Patient A pools a1, a2 and the tumour-free a3: 2 * (4 + 0 + 0) / ((4 + 4) + (12 + 0) + (0 + 2)) = 8/22,
    # not the mean of its slices (1 + 0) / 2 = 0.5, nor 8/20 as it would be without a3's false pixels.
    assert summary["per_patient"]["A"] == pytest.approx(8 / 22)
    assert summary["per_patient"]["B"] == pytest.approx(8 / 12)
    # x.png has no patient: its own patient, keyed by file name; no tumour, nothing predicted -> None.
    assert summary["per_patient"]["x.png"] is None
    assert set(summary["per_patient"]) == {"A", "B", "x.png"}
    assert summary["per_patient_mean"] == pytest.approx((8 / 22 + 8 / 12) / 2)  # 0.5152, None left out
    # Global: 2 * (4 + 4) / (22 + 12 + 0) = 16/34.
    assert summary["global"] == pytest.approx(16 / 34)
    # Tumour-free slices: a3 (2 pixels predicted, wrong) and x.png (nothing, right) -> 1/2.
    assert summary["empty_slices_correct"] == pytest.approx(0.5)
    assert summary["n_slices_with_tumour"] == 3 and summary["n_empty_slices"] == 2


def test_dice_summary_follows_the_score_threshold():
    # At 0.25 a2's 0.3 detection counts (9 pixels apart from its 12): per slice still [1, 0, 2/3], but
    # patient A becomes 8 / (8 + 21 + 2) = 8/31; x.png's 0.2 detection still does not count.
    summary = dice_summary(_patients(), 0.25)
    assert summary["per_patient"]["A"] == pytest.approx(8 / 31)
    assert summary["empty_slices_correct"] == pytest.approx(0.5)
    # At 0.1 x.png's whole-image detection counts too: no tumour-free slice is right any more.
    assert dice_summary(_patients(), 0.1)["empty_slices_correct"] == 0.0


def test_dice_summary_without_empty_slices_or_tumours():
    summary = dice_summary([_record("t.png", None, [(0, 0, 2, 2)], [(0, 0, 2, 2)], [0.9])], 0.5)
    assert summary["empty_slices_correct"] is None and summary["n_empty_slices"] == 0
    assert summary["per_slice"] == [1.0] and summary["per_patient"] == {"t.png": 1.0}
    summary = dice_summary([_record("e.png", None)], 0.5)
    assert summary["per_slice"] == [] and summary["per_slice_mean"] is None
    assert summary["per_patient_mean"] is None and summary["global"] is None
    assert summary["empty_slices_correct"] == 1.0


def test_crowd_regions_are_not_tumour_in_dice():
    # Slice 1: tumour (0, 0, 2, 2) and a crowd region (4, 4, 8, 8); the prediction is the tumour alone -> Dice 1
    # (counting the crowd's 16 pixels as truth would give 8 / (4 + 20) = 1/3).
    # Slice 2: only a crowd region, nothing predicted -> a tumour-free slice, correctly empty.
    records = [_record("c1.png", "C", [(0, 0, 2, 2), (4, 4, 8, 8)], [(0, 0, 2, 2)], [0.9]),
               _record("c2.png", "C", [(4, 4, 8, 8)])]
    records[0].gt_crowd[1] = records[1].gt_crowd[0] = True
    summary = dice_summary(records, 0.5)
    assert summary["per_slice"] == [1.0] and summary["per_patient"] == {"C": 1.0}
    assert summary["n_empty_slices"] == 1 and summary["empty_slices_correct"] == 1.0
    assert iou_summary(records, 0.5)["image_mean"] == 1.0


# --- iou_summary ---

def _iou_records():
    """Three slices; the IoUs are worked out in the tests below."""
    return [
        _record("r1.png", None,
                gt_rects=[(0, 0, 4, 4), (4, 2, 8, 8)],  # gt 0: 16 pixels, gt 1: 4 x 6 = 24 pixels
                det_rects=[(0, 0, 4, 4), (4, 2, 8, 6), (0, 0, 2, 2)],
                # d0 = gt 0 -> IoU 1; d1: 16 pixels inside gt 1 -> 16/24; d2: 4 pixels inside gt 0 -> 4/16 = 0.25
                scores=[0.9, 0.8, 0.7]),
        _record("r2.png", None, gt_rects=[(0, 0, 4, 4)]),  # tumour, nothing predicted
        _record("r3.png", None, det_rects=[(0, 0, 8, 8)], scores=[0.9]),  # no tumour, a false detection
    ]


def test_iou_summary_by_hand():
    summary = iou_summary(_iou_records(), 0.5)
    # Matched pairs: (d0, gt 0) = 1 and (d1, gt 1) = 16/24; d2 finds gt 0 taken and is an FP.
    assert summary["n_matched_pairs"] == 2
    assert summary["matched_pair_mean"] == pytest.approx((1 + 16 / 24) / 2)
    # r1: predicted union 16 + 16 = 32 pixels (d2 lies inside d0), truth 16 + 24 = 40, overlap 32 -> 32/40;
    # r2: 0 / 16 = 0; r3 has no tumour and is not averaged -> (0.8 + 0) / 2 = 0.4.
    assert summary["image_mean"] == pytest.approx(0.4)


def test_iou_summary_thresholds():
    # Score threshold 0.85 keeps d0 alone: instances [1]; r1 union 16 / 40 = 0.4, r2 0 -> image mean 0.2.
    summary = iou_summary(_iou_records(), 0.85)
    assert summary["n_matched_pairs"] == 1 and summary["matched_pair_mean"] == pytest.approx(1.0)
    assert summary["image_mean"] == pytest.approx(0.2)
    # IoU threshold 0.7: d1 (16/24 = 0.667) no longer matches; the image mean does not depend on it.
    summary = iou_summary(_iou_records(), 0.5, iou_threshold=0.7)
    assert summary["n_matched_pairs"] == 1 and summary["matched_pair_mean"] == pytest.approx(1.0)
    assert summary["image_mean"] == pytest.approx(0.4)


def test_iou_summary_with_nothing_to_average():
    summary = iou_summary([_record("e.png", None), _record("f.png", None, det_rects=[(0, 0, 2, 2)], scores=[1])],
                          0.5)
    assert summary == dict(image_mean=None, matched_pair_mean=None, n_matched_pairs=0)

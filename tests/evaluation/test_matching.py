"""Tests for mrcnn_tf/evaluation/matching.py on hand-made boxes, masks and IoU matrices.

Boxes are ``[y1, x1, y2, x2]`` with an exclusive end, so ``[0, 0, 10, 10]`` covers 10 x 10 = 100 pixels.
"""
import numpy as np
import pytest

from mrcnn_tf.evaluation.matching import box_iou_matrix, mask_iou_matrix, match_detections, record_iou
from mrcnn_tf.evaluation.records import ImageRecord


def _rectangle_masks(size, boxes):
    """``[N, size, size]`` uint8 masks filling each exclusive-end ``[y1, x1, y2, x2]`` of ``boxes``."""
    masks = np.zeros((len(boxes), size, size), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(masks, boxes):
        mask[y1:y2, x1:x2] = 1
    return masks


# --- box IoU ---

def test_box_iou_matrix_by_hand():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([
        [0, 0, 10, 10],  # identical -> 1
        [0, 5, 10, 15],  # overlap 10 x 5 = 50, union 100 + 100 - 50 = 150 -> 1/3
        [5, 5, 15, 15],  # overlap 5 x 5 = 25, union 175 -> 1/7
        [20, 20, 30, 30],  # apart -> 0
    ], np.float32)
    np.testing.assert_allclose(box_iou_matrix(a, b), [[1, 1 / 3, 1 / 7, 0]])
    assert box_iou_matrix(a, b).shape == (1, 4)
    np.testing.assert_allclose(box_iou_matrix(b, a), box_iou_matrix(a, b).T)


def test_box_iou_exclusive_end_and_empty_union():
    # [0, 0, 1, 1] and [0, 1, 1, 2] touch along x = 1 but share no pixel with an exclusive end.
    assert box_iou_matrix([[0, 0, 1, 1]], [[0, 1, 1, 2]])[0, 0] == 0
    # Two zero-area boxes: union 0 -> IoU 0, not NaN.
    assert box_iou_matrix([[5, 5, 5, 5]], [[5, 5, 5, 5]])[0, 0] == 0
    assert box_iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou_matrix([[0, 0, 1, 1]], np.zeros((0, 4))).shape == (1, 0)


# --- mask IoU ---

def test_mask_iou_matrix_by_hand():
    a = _rectangle_masks(8, [(0, 0, 4, 4)])  # 16 pixels
    b = _rectangle_masks(8, [
        (2, 2, 6, 6),  # 16 pixels, overlap rows 2-3 x cols 2-3 = 4, union 28 -> 1/7
        (0, 0, 4, 2),  # 8 pixels inside a: overlap 8, union 16 -> 1/2
        (6, 6, 8, 8),  # apart -> 0
    ])
    np.testing.assert_allclose(mask_iou_matrix(a, b), [[1 / 7, 1 / 2, 0]])


def test_mask_iou_equals_box_iou_for_rectangles_and_accepts_255():
    boxes = [(0, 0, 8, 8), (4, 2, 16, 10), (10, 10, 16, 16), (1, 1, 3, 3)]
    masks = _rectangle_masks(16, boxes)
    np.testing.assert_allclose(mask_iou_matrix(masks, masks), box_iou_matrix(boxes, boxes))
    np.testing.assert_allclose(mask_iou_matrix(masks * 255, masks), box_iou_matrix(boxes, boxes))


def test_mask_iou_of_empty_masks_and_bad_shapes():
    empty = np.zeros((1, 8, 8), np.uint8)
    assert mask_iou_matrix(empty, empty)[0, 0] == 0  # union 0 -> 0, not NaN
    assert mask_iou_matrix(np.zeros((0, 8, 8)), empty).shape == (0, 1)
    with pytest.raises(ValueError, match="different sizes"):
        mask_iou_matrix(empty, np.zeros((1, 8, 9)))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        mask_iou_matrix(np.zeros((8, 8)), empty)


# --- matching ---

def test_two_detections_on_one_ground_truth_make_one_tp_one_fp():
    # Input order is not score order: detection 1 (0.9) goes first and takes the ground truth.
    is_tp, is_ignored, matched = match_detections([0.6, 0.9], [[0.9], [0.7]], [False])
    np.testing.assert_array_equal(is_tp, [False, True])
    np.testing.assert_array_equal(is_ignored, [False, False])
    np.testing.assert_array_equal(matched, [-1, 0])


def test_equal_scores_keep_input_order():
    # Both score 0.8 on the one ground truth: the first in input order wins, although the second overlaps more.
    is_tp, _, matched = match_detections([0.8, 0.8], [[0.6], [0.9]], [False])
    np.testing.assert_array_equal(is_tp, [True, False])
    np.testing.assert_array_equal(matched, [0, -1])


def test_equal_scores_keep_input_order_in_a_long_list():
    # 20 detections: 0.7 at indices 0, 3, ..., 18 (IoU 0), 0.5 elsewhere (IoU 0.6 on the one ground truth).
    # The first 0.5 in input order, index 1, must take it; an unstable sort (quicksort beyond 16 items) would
    # put another tied detection first.
    scores = np.where(np.arange(20) % 3 == 0, 0.7, 0.5)
    iou = np.where(scores == 0.5, 0.6, 0.0)[:, None]  # [20, 1]
    is_tp, _, _ = match_detections(scores, iou, [False])
    assert np.flatnonzero(is_tp).tolist() == [1]


def test_highest_iou_among_unmatched_ground_truths():
    iou = [
        [0.6, 0.8],  # detection 0 (0.9) takes gt 1 (0.8 > 0.6)
        [0.55, 0.9],  # detection 1 (0.8): gt 1 is taken, so it takes gt 0 (0.55 >= 0.5)
        [0.7, 0.7],  # detection 2 (0.7): both taken -> FP
    ]
    is_tp, is_ignored, matched = match_detections([0.9, 0.8, 0.7], iou, [False, False])
    np.testing.assert_array_equal(is_tp, [True, True, False])
    np.testing.assert_array_equal(matched, [1, 0, -1])
    assert not is_ignored.any()


def test_iou_threshold_is_inclusive():
    is_tp, _, _ = match_detections([0.9, 0.8], [[0.5, 0.0], [0.0, 0.49]], [False, False])
    np.testing.assert_array_equal(is_tp, [True, False])
    is_tp, _, _ = match_detections([0.9, 0.8], [[0.5, 0.0], [0.0, 0.49]], [False, False], iou_threshold=0.4)
    np.testing.assert_array_equal(is_tp, [True, True])


def test_crowd_region_ignores_detections_but_never_matches():
    # gt 0 is a tumour, gt 1 a crowd region.
    iou = [
        [0.8, 0.0],  # 0.9: takes gt 0
        [0.0, 0.7],  # 0.8: only on the crowd -> ignored
        [0.0, 0.6],  # 0.7: the crowd absorbs it too -> ignored
        [0.6, 0.6],  # 0.6: gt 0 taken, on the crowd -> ignored, not FP
        [0.0, 0.3],  # 0.5: below threshold on the crowd -> FP
    ]
    is_tp, is_ignored, matched = match_detections([0.9, 0.8, 0.7, 0.6, 0.5], iou, [False, True])
    np.testing.assert_array_equal(is_tp, [True, False, False, False, False])
    np.testing.assert_array_equal(is_ignored, [False, True, True, True, False])
    np.testing.assert_array_equal(matched, [0, -1, -1, -1, -1])


def test_non_crowd_match_wins_over_crowd():
    # Higher IoU with the crowd region, but a free tumour above threshold comes first -> TP on gt 0.
    is_tp, is_ignored, matched = match_detections([0.9], [[0.55, 0.95]], [False, True])
    assert is_tp[0] and not is_ignored[0] and matched[0] == 0


def test_no_detections_or_no_ground_truth():
    is_tp, is_ignored, matched = match_detections([], np.zeros((0, 2)), [False, False])
    assert is_tp.shape == is_ignored.shape == matched.shape == (0,)
    is_tp, is_ignored, matched = match_detections([0.9, 0.3], np.zeros((2, 0)), [])
    np.testing.assert_array_equal(is_tp, [False, False])
    np.testing.assert_array_equal(matched, [-1, -1])
    assert matched.dtype.kind == "i"


def test_iou_of_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\[D, G\] = \[2, 1\]"):
        match_detections([0.9, 0.8], [[0.5, 0.5]], [False])


def test_record_iou_by_boxes_or_masks():
    # Detection box = ground-truth box [0, 0, 4, 4], but its mask keeps only the top half: mask IoU 8 / 16.
    gt_masks = _rectangle_masks(8, [(0, 0, 4, 4)])
    det_masks = _rectangle_masks(8, [(0, 0, 2, 4)])
    record = ImageRecord(1, "r.png", None, 8, 8, np.float32([[0, 0, 4, 4]]), gt_masks, np.zeros(1, bool),
                         np.float32([[0, 0, 4, 4]]), np.float32([0.9]), det_masks)
    np.testing.assert_allclose(record_iou(record, "box"), [[1.0]])
    np.testing.assert_allclose(record_iou(record, "mask"), [[0.5]])
    with pytest.raises(ValueError, match="kind"):
        record_iou(record, "polygon")
    record.det_masks = None
    with pytest.raises(ValueError, match="r.png"):
        record_iou(record, "mask")

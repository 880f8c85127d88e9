"""Tests for mrcnn_tf/ops/matching.py on hand-made boxes whose IoUs are worked out in comments.

Most cases use the ground-truth box ``[0, 0, 10, 10]`` (area 100) and boxes ``[0, 0, 10, w]`` inside it, whose IoU
is ``10 * w / 100 = w / 10``; these values are exact in float32, so the threshold boundaries are tested exactly.
"""
import numpy as np
import pytest

from mrcnn_tf.ops import boxes as box_ops
from mrcnn_tf.ops.matching import IGNORE, NEGATIVE, POSITIVE, match_boxes_to_ground_truth

POSITIVE_IOU = 0.7
NEGATIVE_IOU = 0.3


def _f32(values):
    return np.asarray(values, np.float32).reshape(-1, 4)


def _match(boxes, gt_boxes, gt_valid, allow_low_quality):
    matched_gt, labels, max_iou = match_boxes_to_ground_truth(
        _f32(boxes), _f32(gt_boxes), np.asarray(gt_valid, bool), POSITIVE_IOU, NEGATIVE_IOU, allow_low_quality
    )
    return matched_gt.numpy(), labels.numpy(), max_iou.numpy()


@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_labels_by_thresholds(allow_low_quality):
    gt = [[0, 0, 10, 10]]
    boxes = [
        [0, 0, 10, 10],  # IoU 1.0 -> positive
        [0, 0, 10, 7],  # IoU 0.7 -> positive (>= 0.7)
        [0, 0, 10, 6],  # IoU 0.6 -> ignored
        [0, 0, 10, 3],  # IoU 0.3 -> ignored (not < 0.3)
        [0, 0, 10, 2],  # IoU 0.2 -> negative
        [50, 50, 60, 60],  # IoU 0.0 -> negative
    ]
    matched_gt, labels, max_iou = _match(boxes, gt, [True], allow_low_quality)
    # The IoU-1 box is the ground truth's best, so the low-quality rule adds nothing here.
    np.testing.assert_array_equal(labels, [POSITIVE, POSITIVE, IGNORE, IGNORE, NEGATIVE, NEGATIVE])
    np.testing.assert_allclose(max_iou, [1.0, 0.7, 0.6, 0.3, 0.2, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(matched_gt, [0, 0, 0, 0, 0, 0])
    assert labels.dtype == np.int32 and matched_gt.dtype == np.int32 and max_iou.dtype == np.float32


def test_just_below_positive_threshold_is_ignored():
    # w = 6.9: IoU 69 / 100 = 0.69 < 0.7.
    _, labels, _ = _match([[0, 0, 10, 6.9], [0, 0, 10, 10]], [[0, 0, 10, 10]], [True], False)
    np.testing.assert_array_equal(labels, [IGNORE, POSITIVE])


def test_matched_gt_points_to_the_best_ground_truth():
    gt = [
        [100, 100, 110, 110],  # 0
        [0, 0, 10, 10],  # 1
        [200, 0, 210, 10],  # 2
    ]
    boxes = [
        [0, 0, 10, 10],  # gt 1, IoU 1
        [200, 0, 210, 8],  # gt 2, IoU 0.8
        [100, 100, 110, 110],  # gt 0, IoU 1
        # Overlaps gt 1 with IoU 0.5 (10 * 5 / 100) and gt 0 with IoU 0 -> matched to 1.
        [0, 5, 10, 10],
    ]
    matched_gt, labels, max_iou = _match(boxes, gt, [True, True, True], False)
    np.testing.assert_array_equal(matched_gt, [1, 2, 0, 1])
    np.testing.assert_array_equal(labels, [POSITIVE, POSITIVE, POSITIVE, IGNORE])
    np.testing.assert_allclose(max_iou, [1.0, 0.8, 1.0, 0.5], rtol=1e-6)


def test_matched_gt_prefers_the_higher_iou_of_two_overlapping_ground_truths():
    gt = [
        [0, 0, 10, 10],  # 0
        [0, 2, 10, 12],  # 1
    ]
    # Box [0, 1.5, 10, 11.5], both IoUs above 0.7 so argmax alone decides:
    # gt 0: intersection 8.5 * 10 = 85, union 115 -> 0.739; gt 1: intersection 9.5 * 10 = 95, union 105 -> 0.905.
    matched_gt, labels, max_iou = _match([[0, 1.5, 10, 11.5]], gt, [True, True], False)
    np.testing.assert_array_equal(matched_gt, [1])
    np.testing.assert_array_equal(labels, [POSITIVE])
    np.testing.assert_allclose(max_iou, [95.0 / 105.0], rtol=1e-6)


@pytest.mark.parametrize("allow_low_quality", [False, True])
@pytest.mark.parametrize("padding", [[0, 0, 10, 10], [0, 0, 0, 0], [-1, -1, -1, -1]])
def test_padded_ground_truth_never_matches(allow_low_quality, padding):
    gt = [
        padding,  # 0: padding
        [0, 0, 10, 10],  # 1: padding, identical to box 0
        [100, 100, 110, 110],  # 2: the only valid ground truth
        [0, 0, 10, 10],  # 3: padding, identical to box 0
    ]
    boxes = [
        [0, 0, 10, 10],  # IoU 1 with padding only; IoU 0 with gt 2
        [100, 100, 110, 110],  # IoU 1 with gt 2
        [0, 0, 0, 0],
    ]
    matched_gt, labels, max_iou = _match(boxes, gt, [False, False, True, False], allow_low_quality)
    np.testing.assert_array_equal(labels, [NEGATIVE, POSITIVE, NEGATIVE])
    np.testing.assert_allclose(max_iou, [0.0, 1.0, 0.0], atol=1e-7)
    # Every box is matched to the only valid ground truth: padding is never a match, not even a negative's.
    np.testing.assert_array_equal(matched_gt, [2, 2, 2])


def test_padded_ground_truth_gets_no_low_quality_positive():
    # The padded gt 0 overlaps box 0 with IoU 0.5: were it valid, the low-quality rule would make box 0 positive.
    gt = [[0, 0, 10, 10], [100, 100, 110, 110]]
    boxes = [[0, 0, 10, 5], [100, 100, 110, 110]]
    matched_gt, labels, _ = _match(boxes, gt, [False, True], True)
    np.testing.assert_array_equal(labels, [NEGATIVE, POSITIVE])
    np.testing.assert_array_equal(matched_gt, [1, 1])


@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_no_valid_ground_truth_makes_every_box_negative(allow_low_quality):
    # The padding coincides with the boxes exactly, and still nothing is positive or ignored.
    gt = [[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 0, 0]]
    boxes = [[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 6], [40, 40, 50, 50]]
    _, labels, max_iou = _match(boxes, gt, [False, False, False], allow_low_quality)
    np.testing.assert_array_equal(labels, [NEGATIVE] * 4)
    np.testing.assert_array_equal(max_iou, [-1.0] * 4)


def test_low_quality_gives_every_ground_truth_its_best_boxes_including_ties():
    gt = [
        [0, 0, 10, 10],  # 0
        [100, 100, 110, 110],  # 1
        [300, 300, 310, 310],  # 2: overlaps no box at all
    ]
    boxes = [
        [0, 0, 10, 5],  # gt 0, IoU 50 / 100 = 0.5 (best of gt 0, tied with box 1)
        [0, 5, 10, 10],  # gt 0, IoU 0.5 (tie)
        [0, 0, 10, 2],  # gt 0, IoU 0.2
        [100, 100, 110, 102],  # gt 1, IoU 0.2 (best of gt 1, below the negative threshold)
        [100, 100, 110, 101],  # gt 1, IoU 0.1
        [200, 200, 210, 210],  # nothing
    ]
    valid = [True, True, True]
    _, labels_strict, _ = _match(boxes, gt, valid, False)
    np.testing.assert_array_equal(labels_strict, [IGNORE, IGNORE, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE])
    matched_gt, labels, max_iou = _match(boxes, gt, valid, True)
    # Both tied boxes of gt 0 and the 0.2 box of gt 1 become positive; a gt with no overlap adds nothing.
    np.testing.assert_array_equal(labels, [POSITIVE, POSITIVE, NEGATIVE, POSITIVE, NEGATIVE, NEGATIVE])
    np.testing.assert_array_equal(matched_gt[[0, 1, 3]], [0, 0, 1])
    # max_iou is the IoU itself, not changed by the rule.
    np.testing.assert_allclose(max_iou, [0.5, 0.5, 0.2, 0.2, 0.1, 0.0], rtol=1e-6)


def test_low_quality_positive_follows_the_ground_truth_it_is_best_for():
    gt = [
        [0, 0, 10, 10],  # 0
        [0, 6, 10, 16],  # 1
    ]
    boxes = [
        # IoU with gt 0: 10 * 10 / 100 = 1; with gt 1: 10 * 4 / (200 - 40) = 0.25.
        [0, 0, 10, 10],
        # IoU with gt 0: 10 * 8 / (200 - 80) = 0.667; with gt 1: 10 * 6 / (200 - 60) = 0.429.
        # Its best gt is 0 (0.667, not positive), but it is gt 1's best box (0.429 > 0.25).
        [0, 2, 10, 12],
    ]
    matched_gt, labels, max_iou = _match(boxes, gt, [True, True], True)
    np.testing.assert_array_equal(labels, [POSITIVE, POSITIVE])
    # As documented in the op: a low-quality positive whose own best match is not positive is assigned to the
    # ground truth it is best for, so gt 1 gets a box to regress to.
    np.testing.assert_array_equal(matched_gt, [0, 1])
    np.testing.assert_allclose(max_iou, [1.0, 80.0 / 120.0], rtol=1e-6)


def test_low_quality_keeps_a_positive_match():
    gt = [
        [0, 0, 10, 10],  # 0
        [0, 0, 10, 1],  # 1: a thin strip inside gt 0
    ]
    boxes = [
        [0, 0, 10, 10],  # gt 0 IoU 1 (gt 0's best); gt 1 IoU 10 / 100 = 0.1
        # gt 0 IoU 80 / 100 = 0.8 (positive, not gt 0's best); gt 1 IoU 10 / 80 = 0.125 (gt 1's best).
        [0, 0, 10, 8],
        [50, 50, 60, 60],
    ]
    matched_gt, labels, _ = _match(boxes, gt, [True, True], True)
    np.testing.assert_array_equal(labels, [POSITIVE, POSITIVE, NEGATIVE])
    # Box 1 is already a positive of gt 0, so being gt 1's best box does not take it away.
    np.testing.assert_array_equal(matched_gt[:2], [0, 0])


def _reference_labels(iou, gt_valid, allow_low_quality):
    """NumPy restatement of the labelling rule on a given ``[N, G]`` IoU matrix."""
    iou = np.where(gt_valid[None, :], iou, -1.0)
    max_iou = iou.max(axis=1)
    labels = np.full(len(iou), IGNORE)
    labels[max_iou >= POSITIVE_IOU] = POSITIVE
    labels[max_iou < NEGATIVE_IOU] = NEGATIVE
    if allow_low_quality:
        for g in np.flatnonzero(gt_valid):
            best = iou[:, g].max()
            if best > 0:
                labels[iou[:, g] == best] = POSITIVE
    return labels, max_iou


@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_random_boxes_match_numpy_reference(allow_low_quality):
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 60, size=(300, 2)).astype(np.float32)
    sides = rng.integers(4, 30, size=(300, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + sides], axis=1)
    gt_corners = rng.integers(0, 60, size=(8, 2)).astype(np.float32)
    gt_sides = rng.integers(8, 30, size=(8, 2)).astype(np.float32)
    gt_boxes = np.concatenate([gt_corners, gt_corners + gt_sides], axis=1)
    gt_valid = np.array([True, True, False, True, True, False, True, False])
    iou = box_ops.pairwise_iou(boxes, gt_boxes).numpy()
    expected_labels, expected_max = _reference_labels(iou, gt_valid, allow_low_quality)
    matched_gt, labels, max_iou = _match(boxes, gt_boxes, gt_valid, allow_low_quality)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(max_iou, expected_max)
    assert np.all(gt_valid[matched_gt])
    # A box positive by threshold is matched to a ground truth of its highest IoU.
    strong = expected_max >= POSITIVE_IOU
    np.testing.assert_array_equal(iou[strong, matched_gt[strong]], expected_max[strong])

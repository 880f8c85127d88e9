"""Tests for mrcnn_tf/evaluation/ap.py: equation (3) worked out by hand on short ranked lists and tiny records.

Boxes are ``[y1, x1, y2, x2]`` exclusive end; the records' masks fill their boxes, so box and mask IoU agree
unless a test sets masks of its own.
"""
import numpy as np
import pytest

from mrcnn_tf.evaluation.ap import average_precision, dataset_ap, precision_recall
from mrcnn_tf.evaluation.records import ImageRecord

SIZE = 16
A, B, C = (0, 0, 4, 4), (8, 8, 12, 12), (0, 10, 6, 16)  # three disjoint regions of the 16 x 16 image


def _masks(boxes):
    """``[N, 16, 16]`` uint8 masks filling each box."""
    masks = np.zeros((len(boxes), SIZE, SIZE), np.uint8)
    for mask, (y1, x1, y2, x2) in zip(masks, boxes):
        mask[y1:y2, x1:x2] = 1
    return masks


def _record(gt_boxes, det_boxes=(), scores=(), crowd=None, image_id=1):
    """A 16 x 16 ImageRecord whose masks fill their boxes."""
    crowd = np.zeros(len(gt_boxes), bool) if crowd is None else np.asarray(crowd, bool)
    return ImageRecord(
        image_id=image_id, file_name=f"{image_id}.png", patient=None, height=SIZE, width=SIZE,
        gt_boxes=np.asarray(gt_boxes, np.float32).reshape(-1, 4), gt_masks=_masks(gt_boxes), gt_crowd=crowd,
        det_boxes=np.asarray(det_boxes, np.float32).reshape(-1, 4), det_scores=np.asarray(scores, np.float32),
        det_masks=_masks(det_boxes))


# --- equation (3) on ranked lists ---

def test_perfect_detections_give_ap_1():
    result = average_precision([0.9, 0.8, 0.7], [True, True, True], num_gt=3)
    assert result["ap"] == pytest.approx(1.0)
    assert result["reason"] is None and result["num_detections"] == 3 and result["num_gt"] == 3


def test_all_false_detections_give_ap_0():
    result = average_precision([0.9, 0.8], [False, False], num_gt=2)
    assert result["ap"] == 0.0 and result["reason"] is None


def test_all_point_interpolation_differs_from_naive_sum():
    # Ranked TP, FP, FP, TP, TP with 3 ground truths; (precision, recall) after each:
    #   1/1 = 1 @ 1/3,  1/2 @ 1/3,  1/3 @ 1/3,  2/4 = 0.5 @ 2/3,  3/5 = 0.6 @ 1
    # naive sum of p * delta r: 1 * 1/3 + 0 + 0 + 0.5 * 1/3 + 0.6 * 1/3 = 2.1 / 3 = 0.7
    # interpolated: p_interp(1/3) = 1, p_interp(2/3) = max(0.5, 0.6) = 0.6, p_interp(1) = 0.6
    #   AP = 1/3 * 1 + 1/3 * 0.6 + 1/3 * 0.6 = 2.2 / 3 = 0.7333
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    is_tp = [True, False, False, True, True]
    precision, recall, _ = precision_recall(scores, is_tp, 3)
    naive = float(np.sum(precision * np.diff(recall, prepend=0.0)))
    assert naive == pytest.approx(0.7)
    result = average_precision(scores, is_tp, 3)
    assert result["ap"] == pytest.approx(2.2 / 3)
    # The curve returned is the one summed: unique recalls with their interpolated precision.
    np.testing.assert_allclose(result["recall"], [1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(result["precision"], [1, 0.6, 0.6])


def test_sum_starts_at_recall_0_and_leading_false_positives_count():
    # FP, TP with 1 ground truth: (1/2 @ 1) -> AP = (1 - 0) * 0.5 = 0.5; the leading FP has recall 0, width 0.
    assert average_precision([0.9, 0.8], [False, True], 1)["ap"] == pytest.approx(0.5)
    # A missed ground truth caps recall: TP with 2 ground truths -> AP = 0.5 * 1 = 0.5.
    assert average_precision([0.9], [True], 2)["ap"] == pytest.approx(0.5)


def test_tied_scores_form_one_group_whatever_their_order():
    # 0.9 TP, then a tie at 0.8 of one TP and one FP; 2 ground truths.
    # Grouped: (P 1 @ R 0.5), then after the whole tie (2 TP / 3 = 2/3 @ R 1)
    #   -> AP = 0.5 * 1 + 0.5 * 2/3 = 0.8333.
    # One by one it would be 1.0 with TP first (1 @ 0.5, 1 @ 1) and 0.8333 with FP first: order-dependent.
    first = average_precision([0.9, 0.8, 0.8], [True, True, False], 2)
    second = average_precision([0.9, 0.8, 0.8], [True, False, True], 2)
    assert first["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert second["ap"] == pytest.approx(first["ap"])
    precision, recall, thresholds = precision_recall([0.8, 0.9, 0.8], [True, True, False], 2)
    np.testing.assert_allclose(thresholds, [0.9, 0.8])  # one point per group, best score first
    np.testing.assert_allclose(precision, [1, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 1])


def test_zero_detections_give_ap_0():
    result = average_precision([], [], num_gt=4)
    assert result["ap"] == 0.0 and result["reason"] is None
    assert result["precision"] == [] and result["recall"] == [] and result["num_detections"] == 0


def test_zero_ground_truth_gives_none_with_reason():
    for scores, is_tp in (([], []), ([0.9, 0.4], [False, False])):
        result = average_precision(scores, is_tp, num_gt=0)
        assert result["ap"] is None
        assert result["reason"] == "no ground-truth instances"
        assert result["num_gt"] == 0
    with pytest.raises(ValueError, match="num_gt"):
        precision_recall([0.9], [False], 0)


def test_ignored_detections_are_removed_before_ranking():
    # Without the ignored 0.95 FP: TP @ 0.9 alone -> AP 1; with it counted: (0 @ 0), (1/2 @ 1) -> AP 0.5.
    assert average_precision([0.95, 0.9], [False, True], 1, is_ignored=[True, False])["ap"] == pytest.approx(1)
    assert average_precision([0.95, 0.9], [False, True], 1)["ap"] == pytest.approx(0.5)
    assert average_precision([0.95, 0.9], [False, True], 1, is_ignored=[True, False])["num_detections"] == 1


def test_inconsistent_inputs_are_rejected():
    with pytest.raises(ValueError, match="one entry per detection"):
        precision_recall([0.9, 0.8], [True], 1)
    with pytest.raises(ValueError, match="true positives"):
        precision_recall([0.9, 0.8], [True, True], 1)


# --- dataset_ap on records ---

def test_dataset_ap_perfect_over_two_images():
    records = [_record([A, B], [A, B], [0.9, 0.6], image_id=1), _record([C], [C], [0.7], image_id=2)]
    for kind in ("box", "mask"):
        result = dataset_ap(records, kind)
        assert result["ap"] == pytest.approx(1.0) and result["num_gt"] == 3 and result["num_detections"] == 3


def test_dataset_ap_all_false():
    records = [_record([A], [B], [0.9]), _record([B], [C], [0.8], image_id=2)]
    assert dataset_ap(records, "box")["ap"] == 0.0


def test_dataset_ap_two_detections_on_one_ground_truth():
    # Image 1: two detections on A (0.9 TP, 0.8 duplicate -> FP); image 2: B found at 0.7 (TP). Pooled
    # ranking TP, FP, TP with 2 ground truths: (1 @ 0.5), (1/2 @ 0.5), (2/3 @ 1)
    #   -> AP = 0.5 * max(1, 1/2, 2/3) + 0.5 * 2/3 = 0.8333. Counting the duplicate as TP would give 1.
    records = [_record([A], [A, (0, 0, 4, 3)], [0.9, 0.8]), _record([B], [B], [0.7], image_id=2)]
    assert dataset_ap(records, "box")["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_dataset_ap_uses_every_detection_and_pools_ranking_across_images():
    # Image 1's FP (0.95) outranks image 2's TP (0.1): pooled (0 @ 0), (1/2 @ 1) -> AP 0.5. Per image each
    # would look different; a score threshold would drop the 0.1 TP and give 0.
    records = [_record([], [A], [0.95]), _record([B], [B], [0.1], image_id=2)]
    assert dataset_ap(records, "box")["ap"] == pytest.approx(0.5)


def test_dataset_ap_tied_detections_in_either_order():
    # A found at 0.9; a tie at 0.8 of a TP on B and an FP on C; as in the ranked-list test, AP = 0.8333.
    first = [_record([A, B], [A, B, C], [0.9, 0.8, 0.8])]
    second = [_record([A, B], [A, C, B], [0.9, 0.8, 0.8])]
    assert dataset_ap(first, "box")["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert dataset_ap(second, "box")["ap"] == pytest.approx(dataset_ap(first, "box")["ap"])


def test_detection_on_crowd_region_leaves_ap_unchanged():
    # A is a tumour, C a crowd region. The 0.95 detection on C is ignored: AP as without it, 1.0. Counted as FP
    # it would rank first and give (0 @ 0), (1/2 @ 1) -> 0.5.
    with_crowd_hit = [_record([A, C], [C, A], [0.95, 0.9], crowd=[False, True])]
    without = [_record([A, C], [A], [0.9], crowd=[False, True])]
    for kind in ("box", "mask"):
        result = dataset_ap(with_crowd_hit, kind)
        assert result["ap"] == pytest.approx(dataset_ap(without, kind)["ap"]) == pytest.approx(1.0)
        assert result["num_gt"] == 1 and result["num_detections"] == 1


def test_mask_ap_uses_masks_not_boxes():
    # Detection box equals A's box, but its mask is only the corners (0, 0) and (3, 3): mask IoU 2 / 16.
    record = _record([A], [A], [0.9])
    record.det_masks = np.zeros((1, SIZE, SIZE), np.uint8)
    record.det_masks[0, 0, 0] = record.det_masks[0, 3, 3] = 1
    assert dataset_ap([record], "box")["ap"] == pytest.approx(1.0)
    assert dataset_ap([record], "mask")["ap"] == 0.0


def test_dataset_ap_without_ground_truth_or_masks():
    result = dataset_ap([_record([], [A], [0.9])], "box")
    assert result["ap"] is None and result["reason"] == "no ground-truth instances"
    assert dataset_ap([], "mask")["reason"] == "no ground-truth instances"
    record = _record([A], [A], [0.9])
    record.det_masks = None
    result = dataset_ap([record, _record([B], [B], [0.8], image_id=2)], "mask")
    assert result["ap"] is None and result["reason"] == "no masks"
    assert dataset_ap([record], "box")["ap"] == pytest.approx(1.0)  # boxes need no masks
    with pytest.raises(ValueError, match="kind"):
        dataset_ap([record], "polygon")

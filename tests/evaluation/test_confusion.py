"""Tests for mrcnn_tf/evaluation/confusion.py: the paper's Table 3 counts and hand-made records."""
import numpy as np
import pytest

from mrcnn_tf.evaluation.confusion import (f1_best_threshold, image_level_cells, image_level_counts, localised_cells,
                                           localised_counts, metrics_from_counts, operating_points)
from mrcnn_tf.evaluation.records import ImageRecord


def _record(num_gt, scores, crowd=None, image_id=1):
    """An 8 x 8 ImageRecord with ``num_gt`` ground-truth boxes and one detection per score (no masks needed)."""
    crowd = np.zeros(num_gt, bool) if crowd is None else np.asarray(crowd, bool)
    return ImageRecord(
        image_id=image_id, file_name=f"{image_id}.png", patient=None, height=8, width=8,
        gt_boxes=np.tile(np.float32([0, 0, 4, 4]), (num_gt, 1)), gt_masks=None, gt_crowd=crowd,
        det_boxes=np.tile(np.float32([4, 4, 8, 8]), (len(scores), 1)), det_scores=np.asarray(scores, np.float32),
        det_masks=None)


def test_paper_testing_counts():
    # Table 3, testing: P = 15/16 = 0.9375, R = 15/17 = 0.88235, F1 = 2 * 15 / (2 * 15 + 1 + 2) = 30/33 = 0.90909
    # (the printed 0.803 is not the F1 of its own P and R); accuracy (15 + 7)/25 = 0.88, specificity 7/8 = 0.875.
    figures = metrics_from_counts(15, 1, 2, 7)
    assert figures["precision"] == pytest.approx(0.9375)
    assert figures["recall"] == pytest.approx(15 / 17) == pytest.approx(0.88235, abs=1e-5)
    assert figures["f1"] == pytest.approx(30 / 33) == pytest.approx(0.90909, abs=1e-5)
    assert figures["accuracy"] == pytest.approx(0.88)
    assert figures["specificity"] == pytest.approx(0.875)


def test_paper_training_counts():
    # Table 3, training: P = 102/115 = 0.88696, R = 102/114 = 0.89474 (printed 0.910),
    # F1 = 204 / (204 + 13 + 12) = 204/229 = 0.89083; accuracy 152/177, specificity 50/63.
    figures = metrics_from_counts(102, 13, 12, 50)
    assert figures["precision"] == pytest.approx(0.88696, abs=1e-5)
    assert figures["recall"] == pytest.approx(0.89474, abs=1e-5)
    assert figures["f1"] == pytest.approx(0.89083, abs=1e-5)
    assert figures["accuracy"] == pytest.approx(152 / 177)
    assert figures["specificity"] == pytest.approx(50 / 63)


def test_zero_denominators_give_none():
    # No positive prediction and no positive image: P = 0/0, R = 0/0 -> None, so F1 None; 5 TN -> 1.0 each.
    figures = metrics_from_counts(0, 0, 0, 5)
    assert figures["precision"] is None and figures["recall"] is None and figures["f1"] is None
    assert figures["accuracy"] == 1.0 and figures["specificity"] == 1.0
    assert metrics_from_counts(0, 0, 0, 0) == dict(precision=None, recall=None, f1=None, accuracy=None,
                                                   specificity=None)
    # Only positives, all found: specificity 0/0 -> None while the rest are 1.
    assert metrics_from_counts(4, 0, 0, 0)["specificity"] is None


def test_f1_is_0_when_precision_and_recall_are_0_and_none_when_one_is_undefined():
    figures = metrics_from_counts(0, 3, 4, 0)  # P = 0/3, R = 0/4, P + R = 0 -> F1 0.0
    assert figures["precision"] == 0.0 and figures["recall"] == 0.0 and figures["f1"] == 0.0
    assert figures["specificity"] == 0.0  # 0 / (0 + 3)
    figures = metrics_from_counts(0, 2, 0, 1)  # R = 0/0 -> None, so F1 None although P = 0
    assert figures["precision"] == 0.0 and figures["recall"] is None and figures["f1"] is None


def test_negative_counts_are_rejected():
    with pytest.raises(ValueError, match="fn"):
        metrics_from_counts(1, 0, -1, 0)


def test_image_level_counts_in_table_1_layout():
    records = [
        _record(1, [0.9, 0.2], image_id=1),  # tumour, a detection >= 0.5 -> TP
        _record(2, [0.5], image_id=2),  # tumour, score exactly at the threshold -> TP (inclusive)
        _record(1, [0.3], image_id=3),  # tumour, only below threshold -> FN
        _record(1, [], image_id=4),  # tumour, nothing -> FN
        _record(0, [0.6], image_id=5),  # no tumour, a detection -> FP
        _record(0, [0.49], image_id=6),  # no tumour, below threshold -> TN
        _record(0, [], image_id=7),  # no tumour, nothing -> TN
        _record(1, [], crowd=[True], image_id=8),  # only a crowd region: not a tumour image -> TN
    ]
    counts = image_level_counts(records, 0.5)
    assert counts == dict(tp=2, fp=1, fn=2, tn=3)
    assert sum(counts.values()) == len(records)
    # P = 2/3, R = 2/4, F1 = 2 * 2 / (2 * 2 + 1 + 2) = 4/7
    figures = metrics_from_counts(**counts)
    assert figures["precision"] == pytest.approx(2 / 3) and figures["recall"] == pytest.approx(0.5)
    assert figures["f1"] == pytest.approx(4 / 7)
    # A lower threshold turns image 3 into a TP and image 6 into an FP.
    assert image_level_counts(records, 0.25) == dict(tp=3, fp=2, fn=1, tn=2)


def test_image_level_counts_of_no_records():
    assert image_level_counts([], 0.5) == dict(tp=0, fp=0, fn=0, tn=0)


def _placed(gt_rects, det_rects, scores, image_id, crowd=None):
    """An 8 x 8 ImageRecord whose boxes and masks fill the given rectangles ``(y1, x1, y2, x2)``."""
    def masks(rects):
        out = np.zeros((len(rects), 8, 8), np.uint8)
        for mask, (y1, x1, y2, x2) in zip(out, rects):
            mask[y1:y2, x1:x2] = 1
        return out
    crowd = np.zeros(len(gt_rects), bool) if crowd is None else np.asarray(crowd, bool)
    return ImageRecord(
        image_id=image_id, file_name=f"{image_id}.png", patient=None, height=8, width=8,
        gt_boxes=np.asarray(gt_rects, np.float32).reshape(-1, 4), gt_masks=masks(gt_rects), gt_crowd=crowd,
        det_boxes=np.asarray(det_rects, np.float32).reshape(-1, 4), det_scores=np.asarray(scores, np.float32),
        det_masks=masks(det_rects))


TUMOUR, ELSEWHERE, NEAR = (0, 0, 4, 4), (4, 4, 8, 8), (1, 0, 5, 4)  # NEAR: 12 of 20 pixels shared -> IoU 0.6


def _localisation_cases():
    return [
        _placed([TUMOUR], [TUMOUR], [0.9], 1),  # found in place: TP in both counts
        _placed([TUMOUR], [ELSEWHERE], [0.9], 2),  # a detection, in the wrong place: paper TP; localised FN + FP
        _placed([], [ELSEWHERE], [0.9], 3),  # tumour-free with a detection: FP in both
        _placed([], [], [], 4),  # tumour-free, nothing: TN in both
        _placed([TUMOUR], [], [], 5),  # tumour, nothing: FN in both
        _placed([TUMOUR], [ELSEWHERE, NEAR], [0.9, 0.6], 6),  # one wrong, one right (IoU 0.6): TP in both
        _placed([TUMOUR], [TUMOUR], [0.3], 7),  # in place but below the score threshold: FN in both
        _placed([TUMOUR, ELSEWHERE], [ELSEWHERE], [0.9], 8, crowd=[False, True]),  # on a crowd region only
    ]


def test_localised_count_moves_a_misplaced_detection_from_tp_to_fn_and_fp():
    records = _localisation_cases()
    np.testing.assert_array_equal(image_level_cells(records, 0.5)[[1, 7]], [[1, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(localised_cells(records, 0.5)[[1, 7]], [[0, 1, 1, 0], [0, 1, 1, 0]])
    assert image_level_counts(records, 0.5) == dict(tp=4, fp=1, fn=2, tn=1)  # TP: 1, 2, 6, 8
    counts = localised_counts(records, 0.5)
    # TP: 1 and 6; FP: 3, and 2 and 8 (also FN); FN: 5, 7, 2 and 8; TN: 4. Cells sum to 8 images + 2.
    assert {k: counts[k] for k in ("tp", "fp", "fn", "tn", "mislocated")} == dict(tp=2, fp=3, fn=4, tn=1,
                                                                                    mislocated=2)
    # P = 2 / (2 + 3) = 0.4 (TP + FP = the 5 slices called positive); R = 2 / (2 + 4) = 1/3 (6 tumour slices);
    # F1 = 2 * 0.4 * (1/3) / (0.4 + 1/3) = 4/11.
    assert counts["precision"] == pytest.approx(0.4) and counts["recall"] == pytest.approx(1 / 3)
    assert counts["f1"] == pytest.approx(4 / 11)
    assert "specificity" not in counts and "accuracy" not in counts


def test_localised_count_follows_the_iou_threshold_and_can_use_boxes():
    records = _localisation_cases()[5:6]  # the best match has IoU 0.6
    assert localised_counts(records, 0.5, iou_threshold=0.6)["tp"] == 1  # inclusive
    assert localised_counts(records, 0.5, iou_threshold=0.7)["mislocated"] == 1
    no_masks = _localisation_cases()[1]
    no_masks.det_masks = no_masks.gt_masks = None
    assert localised_counts([no_masks], 0.5, kind="box")["mislocated"] == 1
    with pytest.raises(ValueError, match="masks"):
        localised_counts([no_masks], 0.5)
    assert localised_counts([], 0.5)["tp"] == 0


def _three_tumours_three_without():
    """Six images whose best scores rank tumour, tumour-free, tumour, tumour-free, tumour (one image has none)."""
    return [
        _record(1, [0.9, 0.2], image_id=1),
        _record(1, [0.7], image_id=2),
        _record(1, [0.3], image_id=3),
        _record(0, [0.8], image_id=4),
        _record(0, [0.4], image_id=5),
        _record(0, [], image_id=6),
    ]


def test_f1_best_threshold_tries_each_images_best_score():
    records = _three_tumours_three_without()
    # 0.9: TP1 FN2 -> F1 0.5; 0.8: TP1 FP1 FN2 -> 0.4; 0.7: TP2 FP1 FN1 -> 2/3; 0.4: TP2 FP2 FN1 -> 4/7;
    # 0.3: TP3 FP2 -> 0.75, the best.
    chosen = f1_best_threshold(records)
    assert chosen["threshold"] == pytest.approx(0.3) and chosen["f1"] == pytest.approx(0.75)
    assert (chosen["tp"], chosen["fp"], chosen["fn"], chosen["tn"]) == (3, 2, 0, 1)


def test_f1_best_threshold_prefers_the_highest_of_equal_f1s():
    records = [_record(1, [0.8], image_id=1), _record(0, [0.7], image_id=2), _record(0, [0.65], image_id=3),
               _record(1, [0.6], image_id=4)]
    # 0.8: TP1 FN1 -> F1 2/3; 0.7 -> 1/2; 0.65 -> 2/5; 0.6: TP2 FP2 -> 2/3 again: the higher threshold wins.
    chosen = f1_best_threshold(records)
    assert chosen["threshold"] == pytest.approx(0.8) and chosen["f1"] == pytest.approx(2 / 3)


def test_f1_best_threshold_with_a_min_precision_keeps_to_the_precise_thresholds():
    records = _three_tumours_three_without()
    # precision by threshold: 0.9 -> 1, 0.8 -> 1/2, 0.7 -> 2/3, 0.4 -> 1/2, 0.3 -> 3/5 (the F1-best, above).
    chosen = f1_best_threshold(records, min_precision=0.65)
    assert chosen["threshold"] == pytest.approx(0.7) and chosen["f1"] == pytest.approx(2 / 3)
    assert chosen["min_precision"] == 0.65 and chosen["min_precision_met"] is True
    strict = f1_best_threshold(records, min_precision=1.0)
    assert strict["threshold"] == pytest.approx(0.9) and strict["precision"] == 1.0
    assert f1_best_threshold(records)["min_precision_met"] is True


def test_f1_best_threshold_takes_the_most_precise_when_none_reaches_the_min_precision():
    records = [_record(0, [0.9], image_id=1), _record(1, [0.8], image_id=2), _record(0, [0.7], image_id=3),
               _record(1, [0.6], image_id=4)]
    # 0.9: FP1 -> F1 0 (skipped); 0.8: TP1 FP1 -> P 1/2; 0.7: P 1/3; 0.6: TP2 FP2 -> P 1/2, F1 2/3: the most
    # precise, then the best F1.
    chosen = f1_best_threshold(records, min_precision=0.9)
    assert chosen["threshold"] == pytest.approx(0.6) and chosen["precision"] == pytest.approx(0.5)
    assert chosen["min_precision_met"] is False


def test_f1_best_threshold_is_none_without_a_found_tumour():
    assert f1_best_threshold([_record(0, [0.9], image_id=1), _record(1, [], image_id=2)]) is None
    assert f1_best_threshold([]) is None


def test_operating_points_are_the_matrix_and_its_figures_at_each_threshold():
    records = [_record(1, [0.9], image_id=1), _record(1, [0.4], image_id=2), _record(0, [0.6], image_id=3),
               _record(0, [], image_id=4)]
    points = operating_points(records, [0.3, 0.5, 0.95])
    assert [p["threshold"] for p in points] == [0.3, 0.5, 0.95]
    assert [(p["tp"], p["fp"], p["fn"], p["tn"]) for p in points] == [(2, 1, 0, 1), (1, 1, 1, 1), (0, 0, 2, 2)]
    assert points[0]["precision"] == pytest.approx(2 / 3) and points[0]["recall"] == pytest.approx(1.0)
    assert points[1]["f1"] == pytest.approx(0.5) and points[1]["specificity"] == pytest.approx(0.5)
    assert points[2]["precision"] is None and points[2]["f1"] is None  # nothing predicted: P undefined
    assert operating_points(records, []) == []

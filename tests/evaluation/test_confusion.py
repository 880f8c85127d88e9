"""Tests for mrcnn_tf/evaluation/confusion.py: the paper's Table 3 counts and hand-made records."""
import numpy as np
import pytest

from mrcnn_tf.evaluation.confusion import f1_best_threshold, image_level_counts, metrics_from_counts, operating_points
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

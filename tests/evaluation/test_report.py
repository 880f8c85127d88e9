"""The report: the keys scripts rely on, the figures on a hand-made case, the files written."""
import json

import numpy as np
import pytest

from mrcnn_tf.evaluation import report
from mrcnn_tf.evaluation.records import ImageRecord


def _record(image_id, gt_boxes, det_boxes, scores, patient="P1", size=16):
    """Rectangles as masks, so box and mask figures agree."""
    def masks(boxes):
        out = np.zeros((len(boxes), size, size), np.uint8)
        for m, (y1, x1, y2, x2) in zip(out, boxes):
            m[y1:y2, x1:x2] = 1
        return out
    return ImageRecord(image_id, f"img{image_id}.tif", patient, size, size,
                       np.array(gt_boxes, np.float32).reshape(-1, 4), masks(gt_boxes), np.zeros(len(gt_boxes), bool),
                       np.array(det_boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), masks(det_boxes))


@pytest.fixture
def records():
    return [
        _record(1, [[2, 2, 8, 8]], [[2, 2, 8, 8]], [0.9]),  # TP image, perfect mask
        _record(2, [[4, 4, 12, 12]], [], []),  # FN image
        _record(3, [], [[0, 0, 4, 4]], [0.7], patient="P2"),  # FP image
        _record(4, [], [[0, 0, 4, 4]], [0.2], patient="P2"),  # TN image: detection below the threshold
    ]


def test_report_has_every_documented_key_and_the_hand_computed_figures(records):
    figures = report.build_report(records, score_threshold=0.5)
    il = figures["image_level"]
    assert (il["tp"], il["fp"], il["fn"], il["tn"]) == (1, 1, 1, 1)
    assert il["precision"] == pytest.approx(0.5) and il["recall"] == pytest.approx(0.5)
    assert il["accuracy"] == pytest.approx(0.5) and il["specificity"] == pytest.approx(0.5)
    # Ranked detections: 0.9 TP, 0.7 FP, 0.2 FP with 2 ground truths -> recall 0.5 at precision 1 -> AP 0.5.
    assert figures["ap"]["box_ap50"] == pytest.approx(0.5) and figures["ap"]["mask_ap50"] == pytest.approx(0.5)
    assert figures["iou"]["matched_pair_mean"] == figures["iou"]["instance_mean"] == pytest.approx(1.0)
    assert figures["iou"]["n_matched_pairs"] == 1
    assert figures["iou"]["image_mean"] == pytest.approx(0.5)  # 1.0 and 0.0 over the two tumour slices
    assert figures["dice"]["per_slice_mean"] == pytest.approx(0.5)
    assert figures["dice"]["empty_slices_correct"] == pytest.approx(0.5)
    for kind in ("box", "mask"):
        assert set(figures["coco"][kind]) == {"ap", "ap50", "ap75"}
    assert set(figures["dice"]) == {"per_slice_mean", "per_patient_mean", "global", "empty_slices_correct"}
    assert figures["n_images"] == 4 and figures["thresholds"] == {"score": 0.5, "iou": 0.5}


def test_report_has_the_localised_count_and_intervals_beside_each_figure(records):
    figures = report.build_report(records, score_threshold=0.5)
    # Image 1's detection is in place, so the localisation-aware count is the paper's here.
    localised = figures["image_level_localised"]
    assert {k: localised[k] for k in ("tp", "fp", "fn", "tn", "mislocated")} == dict(tp=1, fp=1, fn=1, tn=1,
                                                                                       mislocated=0)
    assert localised["matched_by"] == "mask" and localised["f1"] == pytest.approx(0.5)
    ci = figures["intervals"]
    assert ci["confidence"] == 0.95 and ci["bootstrap"]["unit"] == "patient" and ci["bootstrap"]["n_units"] == 2
    assert set(ci) == {"confidence", "bootstrap", "image_level", "image_level_localised", "ap", "dice"}
    assert set(ci["image_level"]) == {"precision", "recall", "specificity", "f1"}
    assert set(ci["image_level_localised"]) == {"precision", "recall", "f1"}
    assert set(ci["ap"]) == {"box_ap50", "mask_ap50"} and set(ci["dice"]) == {"per_patient_mean"}
    precision = ci["image_level"]["precision"]  # 1 of 2: Wilson (0.0945, 0.9055)
    assert precision["value"] == figures["image_level"]["precision"] and precision["trials"] == 2
    assert precision["low"] == pytest.approx(0.0945, abs=1e-4) and precision["high"] == pytest.approx(0.9055, abs=1e-4)
    for entry in (ci["image_level"]["f1"], ci["ap"]["box_ap50"], ci["dice"]["per_patient_mean"]):
        assert entry["low"] <= entry["value"] <= entry["high"]
    assert ci["ap"]["box_ap50"]["value"] == figures["ap"]["box_ap50"]


def test_bootstrap_resamples_and_seed_are_settable_and_reproducible(records):
    first = report.build_report(records, resamples=200, seed=5)["intervals"]
    assert first["bootstrap"]["resamples"] == 200 and first["bootstrap"]["seed"] == 5
    assert first == report.build_report(records, resamples=200, seed=5)["intervals"]


def test_report_without_masks_matches_by_boxes_and_has_no_mask_intervals(records):
    for record in records:
        record.det_masks = record.gt_masks = None
    figures = report.build_report(records)
    assert figures["image_level_localised"]["matched_by"] == "box"
    assert figures["intervals"]["ap"]["mask_ap50"]["low"] is None
    assert figures["intervals"]["dice"]["per_patient_mean"]["value"] is None
    assert figures["intervals"]["ap"]["box_ap50"]["low"] is not None
    assert figures["iou"]["image_mean"] is None and "n/a" in report.to_markdown(figures)


def test_operating_points_count_the_images_at_each_threshold(records):
    points = {p["threshold"]: p for p in report.build_report(records, score_threshold=0.5)["operating_points"]}
    assert sorted(points) == list(report.OPERATING_THRESHOLDS)
    # Best scores: 0.9 (tumour), none (tumour), 0.7 (tumour-free), 0.2 (tumour-free).
    assert [points[0.1][k] for k in ("tp", "fp", "fn", "tn")] == [1, 2, 1, 0]
    assert [points[0.3][k] for k in ("tp", "fp", "fn", "tn")] == [1, 1, 1, 1]
    assert [points[0.8][k] for k in ("tp", "fp", "fn", "tn")] == [1, 0, 1, 2]
    assert points[0.8]["precision"] == pytest.approx(1.0) and points[0.1]["precision"] == pytest.approx(1 / 3)
    assert points[0.8]["specificity"] == pytest.approx(1.0) and points[0.5]["f1"] == pytest.approx(0.5)


def test_zero_ground_truth_gives_null_ap_with_a_reason():
    figures = report.build_report([_record(1, [], [[0, 0, 4, 4]], [0.9])])
    assert figures["ap"]["box_ap50"] is None and figures["ap"]["box_reason"]


def test_write_report_writes_json_markdown_and_plots(records, tmp_path):
    figures = report.build_report(records, workdir=str(tmp_path))
    images = {0: np.zeros((16, 16, 3), np.uint8), 2: np.zeros((16, 16, 3), np.uint8)}
    paths = report.write_report(figures, str(tmp_path), records, images)
    assert json.loads(open(paths["json"]).read())["image_level"]["tp"] == 1
    markdown = open(paths["markdown"]).read()
    precision = figures["intervals"]["image_level"]["precision"]
    low, high = precision["low"], precision["high"]
    assert f"| precision | 0.5000 | {low:.4f}-{high:.4f} | 0.937 |" in markdown and "TP 1" in markdown
    assert "| IoU, per-slice region (union masks; the one comparable to the paper's) | 0.5000 | | 0.833 |" in markdown
    assert "| precision, localisation-aware | 0.5000 |" in markdown and "IoU of matched pairs" in markdown
    assert "## Localisation-aware confusion matrix" in markdown and "2 patients" in markdown
    assert "images have no patient id" not in markdown  # the records have patient ids
    assert "| 0.8000 | 1 | 0 | 1 | 2 | 1.0000 | 0.5000 | 0.6667 | 1.0000 |" in markdown  # an operating point
    for key in ("pr_curves", "confusion", "dice", "overlays"):
        assert open(paths[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"

"""Tests for mrcnn_tf/evaluation/compare.py: two models on the same slices, with differences whose paired
resamples can be counted by hand, the refusals of reports that are not of the same images, and report folders
read back as ``mrcnn-evaluate`` writes them.

Slices are 8 x 8 with rectangle masks (``rect_records``).
"""
import dataclasses
import json
import os

import numpy as np
import pytest
from conftest import ONE_TUMOUR_ONE_EMPTY, TWO_PATIENTS, write_lgg_folder
from rect_records import BOTTOM_RIGHT, TOP_LEFT, TOP_RIGHT, WHOLE, record

from mrcnn_tf.config import DataConfig
from mrcnn_tf.data import readers
from mrcnn_tf.errors import DataError
from mrcnn_tf.evaluation import coco, commands, compare, intervals, report


def _side(records, folder="A", score_threshold=0.5):
    return compare.ScoredReport(folder, records, score_threshold, 0.5)


def _found(base, rect=TOP_LEFT, score=0.9):
    """``base`` with one detection at ``rect``."""
    return dataclasses.replace(base, det_boxes=np.asarray([rect], np.float32),
                               det_scores=np.asarray([score], np.float32),
                               det_masks=record(None, det_rects=[rect]).det_masks)


def _tumour_slices(patients, found):
    """One tumour slice (top left) per patient; ``found[i]`` says whether the model detects patient i's."""
    truth = [record(p, gt_rects=[TOP_LEFT]) for p in patients]
    return truth, [_found(r) if hit else r for r, hit in zip(truth, found)]


def test_a_model_against_itself_differs_by_exactly_zero():
    truth, found = _tumour_slices(["P1", "P2", "P3"], [True, False, True])
    found.append(_found(record("P3"), BOTTOM_RIGHT))  # a false positive, so that no figure is trivially 1
    comparison = compare.compare_reports(_side(found), _side(found, "B"))
    assert comparison["bootstrap"] == {"unit": "patient", "n_units": 3, "resamples": intervals.RESAMPLES,
                                       "seed": intervals.SEED, "paired": True}
    for name, _ in compare.FIGURES:
        figure = comparison["figures"][name]
        assert figure["a"] == figure["b"] is not None and figure["difference"] == 0.0, name
        assert figure["low"] == figure["high"] == 0.0 and figure["b_higher_share"] == 0.0, name


def test_the_data_as_it_is_gives_the_reports_own_seven_figures():
    # Every kind of slice: found in place, found only in the wrong place (localised F1 differs from F1), missed,
    # a false alarm, a true negative, a partial mask (Dice below 1), and a low-scoring detection below threshold.
    records = [record("P1", [TOP_LEFT], [TOP_LEFT], [0.9]), record("P1", [TOP_LEFT], [BOTTOM_RIGHT], [0.8]),
               record("P2", [TOP_RIGHT], [], []), record("P2", [], [TOP_LEFT], [0.7]), record("P3", [], [], []),
               record("P3", [WHOLE], [TOP_LEFT, BOTTOM_RIGHT], [0.95, 0.3]),
               record("P4", [TOP_LEFT], [TOP_LEFT], [0.4])]
    # and a detection whose box is right and whose mask is a quarter of it (a box TP, a mask FP)
    right_box = record("P4", [WHOLE], [WHOLE], [0.85])
    records.append(dataclasses.replace(right_box, det_masks=record(None, det_rects=[TOP_LEFT]).det_masks))
    figures = report.build_report(records, 0.5)
    units, n_units, _ = intervals.patient_units(records)
    ones = np.ones((1, n_units), np.int64)
    samples = {name: float(value[0]) for name, value in
               compare.figure_samples(records, units, n_units, ones, 0.5, 0.5).items()}
    assert samples == pytest.approx({
        "precision": figures["image_level"]["precision"], "recall": figures["image_level"]["recall"],
        "f1": figures["image_level"]["f1"], "f1_localised": figures["image_level_localised"]["f1"],
        "box_ap50": figures["ap"]["box_ap50"], "mask_ap50": figures["ap"]["mask_ap50"],
        "dice_per_patient": figures["dice"]["per_patient_mean"]}, abs=1e-12)
    assert samples["f1_localised"] < samples["f1"] and samples["mask_ap50"] != samples["box_ap50"]


def test_one_more_tumour_found_by_hand():
    # Four patients with one tumour slice each: A finds three (recall 0.75), B all four. A resample draws 4
    # patients; B - A in recall is (draws of P4) / 4 >= 0, and B is higher in the resamples that draw P4 at
    # least once: 1 - (3/4)^4 = 0.684 of them.
    truth, found_a = _tumour_slices(["P1", "P2", "P3", "P4"], [True, True, True, False])
    found_b = [_found(r) for r in truth]
    comparison = compare.compare_reports(_side(found_a), _side(found_b, "B"))
    recall = comparison["figures"]["recall"]
    assert (recall["a"], recall["b"], recall["difference"]) == (0.75, 1.0, 0.25)
    assert recall["low"] == 0.0 and recall["high"] <= 0.75
    assert recall["b_higher_share"] == pytest.approx(1 - 0.75 ** 4, abs=0.04)
    assert comparison["figures"]["precision"]["difference"] == 0.0  # both only find tumours
    dice = comparison["figures"]["dice_per_patient"]
    assert (dice["a"], dice["b"]) == (0.75, 1.0)  # P4's Dice is 0 for A


def test_the_paired_interval_is_narrower_than_either_models_own():
    # Ten patients of four tumour slices, found 0 to 4 times by A (the patients differ a lot); B finds one slice
    # more in each of two patients. Each model's recall moves with the draw of patients; the difference hardly.
    rng = np.random.default_rng(0)
    hits = [rng.permutation([True] * k + [False] * (4 - k)) for k in (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)]
    truth, found_a = _tumour_slices([f"P{i // 4}" for i in range(40)], np.concatenate(hits))
    found_b = list(found_a)
    for patient in (1, 3):  # a slice A misses, in P1 and in P3
        index = 4 * patient + int(np.flatnonzero(~hits[patient])[0])
        found_b[index] = _found(truth[index])
    comparison = compare.compare_reports(_side(found_a), _side(found_b, "B"))
    recall = comparison["figures"]["recall"]
    assert recall["difference"] == pytest.approx(2 / 40)
    records = compare.paired_records(_side(found_a), _side(found_b, "B"))[0]
    units, n_units, _ = intervals.patient_units(records)
    own = compare.figure_samples(records, units, n_units, intervals.unit_weights(n_units), 0.5, 0.5)["recall"]
    own_width = np.subtract(*np.percentile(own, [97.5, 2.5]))
    assert recall["high"] - recall["low"] < own_width / 3


def test_each_model_keeps_its_own_score_threshold():
    truth, found = _tumour_slices(["P1", "P2"], [True, True])
    found[1] = _found(truth[1], score=0.6)
    comparison = compare.compare_reports(_side(found, score_threshold=0.5), _side(found, "B", score_threshold=0.7))
    assert comparison["figures"]["recall"]["a"] == 1.0 and comparison["figures"]["recall"]["b"] == 0.5
    assert comparison["figures"]["box_ap50"]["difference"] == 0.0  # AP does not depend on the threshold


def test_reports_of_other_images_or_other_truth_are_refused_naming_both():
    truth, found = _tumour_slices(["P1", "P2"], [True, False])
    with pytest.raises(DataError, match=r"A and B were not scored on the same images: 1 only in the first, 0 only "
                                        rf"in the second \(e.g. only in the first: .*{found[1].file_name}\)"):
        compare.compare_reports(_side(found), _side(found[:1], "B"))
    with pytest.raises(DataError, match=rf"B/coco_ground_truth.json: the image {found[0].file_name} is listed twice"):
        compare.compare_reports(_side(found), _side(found + found[:1], "B"))
    other_truth = [dataclasses.replace(found[0], gt_boxes=np.asarray([BOTTOM_RIGHT], np.float32)), found[1]]
    with pytest.raises(DataError, match=f"A and B hold different ground truth for {found[0].file_name}"):
        compare.compare_reports(_side(found), _side(other_truth, "B"))
    other_patient = [dataclasses.replace(found[0], patient="P9"), found[1]]
    with pytest.raises(DataError, match="name different patients"):
        compare.compare_reports(_side(found), _side(other_patient, "B"))
    with pytest.raises(DataError, match="different IoU thresholds"):
        compare.compare_reports(_side(found), compare.ScoredReport("B", found, 0.5, 0.75))


def test_patient_ids_come_from_the_dataset_where_the_reports_have_none():
    truth, found = _tumour_slices([None] * 4, [True, False, True, True])
    without = compare.compare_reports(_side(found), _side(found, "B"))
    assert without["bootstrap"]["unit"] == "image" and without["bootstrap"]["n_units"] == 4
    markdown = compare.to_markdown(without)
    assert "Each image is its own unit here" in markdown and "| Dice per image (no patient ids) |" in markdown
    patients = {compare.image_key(r.file_name): ("P1" if i < 2 else "P2") for i, r in enumerate(found)}
    with_ids = compare.compare_reports(_side(found), _side(found, "B"), patients)
    assert with_ids["bootstrap"]["unit"] == "patient" and with_ids["bootstrap"]["n_units"] == 2
    assert "Each image is its own unit" not in compare.to_markdown(with_ids)
    del patients[compare.image_key(found[3].file_name)]
    with pytest.raises(DataError, match=f"{found[3].file_name} of A and B is not an image of the dataset"):
        compare.compare_reports(_side(found), _side(found, "B"), patients)


def test_patient_ids_from_a_dataset_reader_match_however_the_path_was_written(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_lgg_folder(str(data), TWO_PATIENTS, ONE_TUMOUR_ONE_EMPTY)
    patients = compare.dataset_patients(readers.open_dataset(str(data), "auto", DataConfig()))
    assert sorted(set(patients.values())) == ["TCGA_AA_0001", "TCGA_AA_0002"] and len(patients) == 4
    monkeypatch.chdir(tmp_path)
    image = sorted(patients)[0]
    found = [dataclasses.replace(record(None, [TOP_LEFT]), file_name=os.path.relpath(image, tmp_path))]
    other = [dataclasses.replace(found[0], file_name=os.path.join(".", "data", "..", found[0].file_name))]
    paired, _ = compare.paired_records(_side(found), _side(other, "B"), patients)
    assert paired[0].patient == patients[image]


def _report_folder(folder, records, score_threshold=0.5):
    """A report folder as ``mrcnn-evaluate --ground-truth --detections`` writes it."""
    folder.mkdir()
    gt, det = folder / "in_gt.json", folder / "in_det.json"
    gt.write_text(json.dumps(coco.to_coco_ground_truth(records)))
    det.write_text(json.dumps(coco.to_coco_results(records)))
    commands.evaluate_coco_files(str(gt), str(det), str(folder), score_threshold)
    return str(folder)


def test_report_folders_are_read_back_and_compared_into_two_files(tmp_path):
    truth, found_a = _tumour_slices(["P1", "P2", "P3"], [True, False, False])
    found_b = [_found(r, score=0.8) for r in truth]
    a = _report_folder(tmp_path / "a", found_a)
    b = _report_folder(tmp_path / "b", found_b, score_threshold=0.4)
    side = compare.load_report(b)
    assert (side.score_threshold, side.iou_threshold) == (0.4, 0.5)
    assert [(r.file_name, r.patient) for r in side.records] == [(r.file_name, r.patient) for r in truth]
    np.testing.assert_array_equal(side.records[2].det_masks, found_b[2].det_masks)
    out = tmp_path / "cmp"
    comparison = commands.compare_report_folders(a, b, str(out))
    assert comparison["figures"]["recall"]["difference"] == pytest.approx(2 / 3)
    assert json.loads((out / compare.COMPARE_JSON).read_text()) == comparison
    markdown = (out / compare.COMPARE_MARKDOWN).read_text()
    assert f"- A: `{a}`, score threshold 0.500" in markdown and "| +0.667 (" in markdown
    assert sorted(p.name for p in out.iterdir()) == [compare.COMPARE_JSON, compare.COMPARE_MARKDOWN]


def test_a_model_that_found_nothing_scores_zero_not_nothing(tmp_path):
    truth, found = _tumour_slices(["P1", "P2"], [True, True])
    a = _report_folder(tmp_path / "a", found)
    b = _report_folder(tmp_path / "b", truth)  # no detections at all: an empty coco_detections.json
    assert json.loads((tmp_path / "b" / coco.DETECTIONS_FILE).read_text()) == []
    figures = commands.compare_report_folders(a, b, str(tmp_path / "cmp"))["figures"]
    assert (figures["mask_ap50"]["b"], figures["dice_per_patient"]["b"], figures["recall"]["b"]) == (0.0, 0.0, 0.0)
    assert figures["mask_ap50"]["difference"] == -1.0 and figures["mask_ap50"]["b_lower_share"] == 1.0


def test_a_folder_that_is_not_a_report_is_named_and_nothing_is_written(tmp_path):
    truth, found = _tumour_slices(["P1"], [True])
    a = _report_folder(tmp_path / "a", found)
    (tmp_path / "b").mkdir()
    out = tmp_path / "cmp"
    with pytest.raises(DataError, match=f"{tmp_path / 'b'}: not a report folder of mrcnn-evaluate "
                                        r"\(no report.json, coco_ground_truth.json, coco_detections.json\)"):
        commands.compare_report_folders(a, str(tmp_path / "b"), str(out))
    assert not out.exists()

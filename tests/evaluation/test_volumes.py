"""mrcnn_tf/evaluation/volumes.py: slices painted back into a volume, Dice, HD95 in mm and millilitres on hand-made
volumes, the means, the per-case figures of a NIfTI case predicted by an oracle, and the two report files."""
import json

import numpy as np
import pytest
from volume_data import CROP, canonical_affine, sample_stack, write_brats_case

from mrcnn_tf.data import readers
from mrcnn_tf.evaluation import volumes


def detections(masks, scores, classes=None):
    masks = np.asarray(masks, np.uint8)
    return {"boxes": np.zeros((len(masks), 4), np.float32), "scores": np.asarray(scores, np.float32),
            "classes": np.asarray(classes if classes is not None else [1] * len(masks), np.int32), "masks": masks}


def test_painting_keeps_what_scores_above_the_threshold_and_the_best_on_top():
    low, high, below = np.zeros((3, 4, 4), np.uint8)
    low[:2, :2] = 1
    high[1:3, 1:3] = 1
    below[3, 3] = 1
    classes, scores = volumes.paint_detections(detections([low, high, below], [0.6, 0.9, 0.3], [1, 2, 1]), 0.5,
                                               (4, 4))
    assert classes[0, 0] == 1 and classes[1, 1] == 2 and classes[3, 3] == 0  # overlap: the higher score's class
    assert scores[1, 1] == pytest.approx(0.9) and scores[0, 0] == pytest.approx(0.6) and scores[3, 3] == 0


def test_a_case_is_predicted_slice_by_slice_and_known_slices_are_not_detected_again():
    image = np.zeros((3, 4, 4, 3), np.uint8)
    seen = []

    def detect(slice_image):
        seen.append(slice_image)
        mask = np.ones((1, 4, 4), np.uint8)
        return detections(mask, [0.8])

    known = {1: np.full((4, 4), 2, np.uint8)}
    classes, scores = volumes.predict_case(detect, image, 0.5, known)
    assert len(seen) == 2
    assert classes[:, 0, 0].tolist() == [1, 2, 1] and scores[0, 0, 0] == pytest.approx(0.8)


def test_a_recording_detector_keeps_each_painted_slice():
    masks = np.zeros((1, 5, 6), np.uint8)
    masks[0, 2:4, 1:3] = 1
    recording = volumes.RecordingDetector(lambda image: detections(masks, [0.7]), 0.5)
    found = recording(np.zeros((5, 6, 3), np.uint8))
    assert found["scores"][0] == pytest.approx(0.7)
    np.testing.assert_array_equal(recording.painted(0), masks[0])
    below = volumes.RecordingDetector(lambda image: detections(masks, [0.2]), 0.5)
    below(np.zeros((5, 6, 3), np.uint8))
    assert not below.painted(0).any()


def test_dice_and_hd95_of_a_cube_shifted_by_one_slice():
    true = np.zeros((10, 10, 10), bool)
    true[2:6, 3:7, 3:7] = True
    shifted = np.roll(true, 1, axis=0)
    assert volumes.dice(true, true) == 1.0 and volumes.dice(true, shifted) == pytest.approx(2 * 48 / 128)
    assert volumes.hausdorff_95(true, true, (3.0, 1.0, 1.0)) == 0.0
    # Every surface voxel is at most one slice from the other surface: 3 mm with 3-mm slices, 1 mm with 1-mm ones.
    assert volumes.hausdorff_95(shifted, true, (3.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert volumes.hausdorff_95(shifted, true, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    empty = np.zeros_like(true)
    assert volumes.dice(empty, empty) == 1.0 and volumes.hausdorff_95(empty, empty, (1, 1, 1)) == 0.0
    assert volumes.hausdorff_95(empty, true, (1, 1, 1)) is None


def test_hd95_is_the_95th_percentile_not_the_maximum():
    true = np.zeros((1, 1, 200), bool)  # a line of voxels: every voxel is on the surface
    true[0, 0, :100] = True
    predicted = true.copy()
    predicted[0, 0, 150] = True  # one stray voxel 51 voxels (102 mm) away: the maximum, but under 5% of distances
    assert volumes.hausdorff_95(predicted, true, (1.0, 1.0, 2.0)) == 0.0
    predicted[0, 0, 110:130] = True  # 20 more, 11-30 voxels away: over 5% of the 221 distances now
    distances = [0.0] * 200 + [102.0] + [2.0 * (k - 99) for k in range(110, 130)]
    assert volumes.hausdorff_95(predicted, true, (1.0, 1.0, 2.0)) == pytest.approx(np.percentile(distances, 95))
    assert 0 < np.percentile(distances, 95) < 102


def test_case_figures_and_their_means_in_millilitres():
    true = np.zeros((4, 5, 5), np.uint8)
    true[1:3, 1:4, 1:4] = 1  # 18 voxels
    predicted = np.zeros_like(true)
    predicted[1:2, 1:4, 1:4] = 2  # 9 voxels of another class: still tumour
    rows = [volumes.case_figures("a", predicted, true, (3.0, 1.0, 1.0), 0.003),
            volumes.case_figures("b", np.zeros_like(true), np.zeros_like(true), (3.0, 1.0, 1.0), 0.003)]
    a = rows[0]
    assert a["true_ml"] == pytest.approx(0.054) and a["predicted_ml"] == pytest.approx(0.027)
    assert a["abs_error_ml"] == pytest.approx(0.027) and a["rel_error"] == pytest.approx(0.5)
    assert a["dice"] == pytest.approx(2 * 9 / 27) and a["hd95_mm"] == pytest.approx(3.0)
    assert rows[1]["rel_error"] is None and rows[1]["dice"] == 1.0
    mean = volumes.summarize(rows)
    assert mean["cases"] == 2 and mean["dice"] == pytest.approx((2 * 9 / 27 + 1) / 2)
    assert mean["rel_error"] == pytest.approx(0.5) and mean["rel_error_cases"] == 1
    assert mean["abs_error_ml"] == pytest.approx(0.0135) and mean["hd95_undefined_cases"] == 0


def test_an_oracle_on_a_nifti_case_scores_perfectly_and_millilitres_follow_the_spacing(tmp_path):
    images, labels = sample_stack(crop=CROP)
    for case_id, spacing in (("thin", (1.0, 1.0, 1.0)), ("thick", (1.0, 1.0, 3.0))):
        write_brats_case(str(tmp_path), case_id, images, labels, canonical_affine(spacing), ("flair",))
    reader = readers.open_dataset(str(tmp_path), "nifti")
    lookup = {images[z][..., 0].tobytes(): z for z in range(len(images))}  # the one modality written: channel 0

    def oracle(image):
        mask = labels[lookup[image[..., 0].tobytes()]][None]
        return detections(mask, [0.9]) if mask.any() else detections(np.zeros((0, 64, 64)), [])

    figures = volumes.evaluate_cases(oracle, reader, reader.items, 0.5)
    thick, thin = figures["cases"]  # cases in id order
    assert (thick["case"], thin["case"]) == ("thick", "thin")
    assert thin["true_ml"] == pytest.approx(labels.sum() / 1000)
    assert thick["true_ml"] == pytest.approx(3 * thin["true_ml"])
    for row in figures["cases"]:
        assert row["dice"] == 1.0 and row["hd95_mm"] == 0.0 and row["abs_error_ml"] == 0.0
    # Slices scored already are painted from what the slice pass kept, not detected again.
    nothing = {item: np.zeros((64, 64), np.uint8) for item in reader.items}
    missed = volumes.evaluate_cases(oracle, reader, reader.items[:8], 0.5, known=nothing)
    assert [row["case"] for row in missed["cases"]] == ["thick"] and missed["cases"][0]["predicted_ml"] == 0.0


def test_the_report_files_hold_every_case_the_means_and_the_definitions(tmp_path):
    rows = [volumes.case_figures("CASE_1", np.ones((2, 2, 2), np.uint8), np.ones((2, 2, 2), np.uint8), (1, 1, 1),
                                 0.001)]
    figures = {"score_threshold": 0.5, "mean": volumes.summarize(rows), "cases": rows,
               "definitions": volumes.DEFINITIONS}
    volumes.write_volume_report(figures, str(tmp_path))
    assert json.loads((tmp_path / "volume_report.json").read_text()) == figures
    text = (tmp_path / "volume_report.md").read_text()
    assert "| CASE_1 | 1.0000 | 0.00 | 0.008 | 0.008 | 0.000 | 0.0000 |" in text
    assert "| **mean** |" in text and "**hd95**" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume_report.json", "volume_report.md"]

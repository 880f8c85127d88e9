"""mrcnn_tf.cli.evaluate (``mrcnn-evaluate``, ``python evaluate.py``): the three modes, run in-process on tiny data
the tests make, and the counts mode as the top-level script and as the installed console script."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ONE_TUMOUR_ONE_EMPTY, TWO_PATIENTS, heavy_modules_after, tiny_config, write_lgg_folder

from mrcnn_tf import runs
from mrcnn_tf.cli import evaluate
from mrcnn_tf.data import splits
from mrcnn_tf.evaluation import coco
from mrcnn_tf.evaluation.records import ImageRecord
from mrcnn_tf.model import build_model

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_from_counts_prints_the_papers_figures(tmp_path):
    # The top-level evaluate.py of a checkout...
    out = subprocess.run([sys.executable, "evaluate.py", "--from-counts", "15", "1", "2", "7"], cwd=PROJECT,
                         capture_output=True, text=True, check=True).stdout
    assert "precision: 0.9375" in out and "recall: 0.8824" in out and "f1: 0.9091" in out
    # ...and the console script pip installs, run from a folder outside the project.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    script = os.path.join(os.path.dirname(sys.executable), "mrcnn-evaluate")
    out = subprocess.run([script, "--from-counts", "102", "13", "12", "50"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "precision: 0.8870" in out and "recall: 0.8947" in out and "f1: 0.8908" in out


def test_from_counts_loads_no_tensorflow():
    code = "from mrcnn_tf.cli import evaluate; assert evaluate.main(['--from-counts', '15', '1', '2', '7']) == 0"
    assert heavy_modules_after(code) == []


def test_detections_mode_scores_a_coco_results_file(tmp_path):
    masks = np.zeros((1, 32, 32), np.uint8)
    masks[0, 8:20, 10:24] = 1
    box = np.array([[8, 10, 20, 24]], np.float32)
    record = ImageRecord(1, "a.png", None, 32, 32, box, masks, np.zeros(1, bool), box, np.array([0.9], np.float32),
                         masks)
    empty = ImageRecord(2, "b.png", None, 32, 32, np.zeros((0, 4), np.float32), np.zeros((0, 32, 32), np.uint8),
                        np.zeros(0, bool), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                        np.zeros((0, 32, 32), np.uint8))
    gt_path, det_path = tmp_path / "gt.json", tmp_path / "det.json"
    gt_path.write_text(json.dumps(coco.to_coco_ground_truth([record, empty])))
    det_path.write_text(json.dumps(coco.to_coco_results([record, empty])))
    out = tmp_path / "report"
    assert evaluate.main(["--ground-truth", str(gt_path), "--detections", str(det_path), "--out", str(out)]) == 0
    figures = json.loads((out / "report.json").read_text())
    assert figures["ap"]["box_ap50"] == pytest.approx(1.0) and figures["ap"]["mask_ap50"] == pytest.approx(1.0)
    assert figures["coco"]["mask"]["ap"] == pytest.approx(1.0)
    assert figures["image_level"]["tp"] == 1 and figures["image_level"]["tn"] == 1
    assert figures["dice"]["global"] == pytest.approx(1.0)


def test_compare_mode_writes_the_paired_differences_of_two_reports(tmp_path, capsys):
    masks = np.zeros((1, 32, 32), np.uint8)
    masks[0, 8:20, 10:24] = 1
    box = np.array([[8, 10, 20, 24]], np.float32)
    missed = ImageRecord(1, "a.png", "P1", 32, 32, box, masks, np.zeros(1, bool), np.zeros((0, 4), np.float32),
                         np.zeros(0, np.float32), np.zeros((0, 32, 32), np.uint8))
    found = dataclasses.replace(missed, det_boxes=box, det_scores=np.array([0.9], np.float32), det_masks=masks)
    reports = []
    for name, record in (("a", missed), ("b", found)):
        gt_path, det_path = tmp_path / f"{name}_gt.json", tmp_path / f"{name}_det.json"
        gt_path.write_text(json.dumps(coco.to_coco_ground_truth([record])))
        det_path.write_text(json.dumps(coco.to_coco_results([record])))
        reports.append(str(tmp_path / name))
        assert evaluate.main(["--ground-truth", str(gt_path), "--detections", str(det_path), "--out", reports[-1]]) == 0
    out = tmp_path / "b_against_a"
    assert evaluate.main(["--compare", *reports, "--out", str(out)]) == 0
    figures = json.loads((out / "compare.json").read_text())["figures"]
    assert (figures["recall"]["a"], figures["recall"]["b"]) == (0.0, 1.0)
    assert "comparison written to" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--compare", *reports])
    assert exit_info.value.code == 2 and "--compare needs --out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # each report keeps the threshold it was scored at
        evaluate.main(["--compare", *reports, "--out", str(out), "--score-threshold", "0.3", "--tta"])
    assert exit_info.value.code == 2 and "--score-threshold, --tta does not apply" in capsys.readouterr().err


def test_detections_mode_names_a_broken_file(tmp_path, capsys):
    bad = tmp_path / "gt.json"
    bad.write_text("{not json")
    code = evaluate.main(["--ground-truth", str(bad), "--detections", str(bad), "--out", str(tmp_path / "r")])
    assert code == 2 and str(bad) in capsys.readouterr().err


@pytest.fixture
def tiny_run(tmp_path):
    """A run folder (config, weights, splits) and an LGG-layout folder of 2 patients x 2 slices."""
    data = tmp_path / "data"
    write_lgg_folder(str(data), TWO_PATIENTS, ONE_TUMOUR_ONE_EMPTY)
    run = tmp_path / "run"
    run.mkdir()
    config = tiny_config()
    runs.write_config(str(run), config)
    build_model(config).save_weights(runs.path(str(run), runs.WEIGHTS_FILE))
    splits.write_splits({"ratios": [0.5, 0, 0.5], "seed": 0, "by": "patient", "train": ["TCGA_AA_0001"],
                         "val": [], "test": ["TCGA_AA_0002"]}, runs.path(str(run), runs.SPLITS_FILE))
    return run, data


def test_model_mode_evaluates_the_runs_test_split(tiny_run, tmp_path):
    run, data = tiny_run
    out = tmp_path / "report"
    assert evaluate.main(["--model", str(run), "--data", str(data), "--split", "test", "--out", str(out)]) == 0
    figures = json.loads((out / "report.json").read_text())
    assert figures["n_images"] == 2 and figures["n_images_with_tumour"] == 1
    assert figures["source"]["split"] == "test"
    for name in ("report.md", "pr_curves.png", "confusion_matrix.png", "dice_histogram.png", "overlays.png"):
        assert (out / name).is_file(), name
    code = evaluate.main(["--model", str(run), "--data", str(data), "--split", "val", "--out", str(out)])
    assert code == 2  # the val split is empty: a clear error, not an empty report


def _val_and_test_patients(run):
    """Give the tiny run a validation split (one patient) and a test split (the other)."""
    splits.write_splits({"ratios": [0, 0.5, 0.5], "seed": 0, "by": "patient", "train": [],
                         "val": ["TCGA_AA_0001"], "test": ["TCGA_AA_0002"]}, runs.path(str(run), runs.SPLITS_FILE))


def test_model_mode_chooses_the_score_threshold_on_the_val_split(tiny_run, tmp_path, capsys):
    run, data = tiny_run
    _val_and_test_patients(run)
    out = tmp_path / "report"
    args = ["--model", str(run), "--data", str(data), "--split", "test", "--out", str(out), "--score-threshold"]
    assert evaluate.main(args + ["val"]) == 0
    figures = json.loads((out / "report.json").read_text())
    chosen = figures["source"]["score_threshold_chosen_on_val"]
    expected = 0.5 if chosen is None else chosen["threshold"]
    assert figures["thresholds"]["score"] == pytest.approx(expected)
    with pytest.raises(SystemExit):
        evaluate.parse_args(args + ["1.5"])
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--ground-truth", "g.json", "--detections", "d.json", "--out", "o",
                             "--score-threshold", "val"])
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--ground-truth", "g.json", "--detections", "d.json", "--out", "o", "--tta"])
    assert "--tta needs --model" in capsys.readouterr().err
    assert evaluate.parse_args(args + ["0.5", "--tta"]).tta
    for bad, message in ((["0.5", "--min-precision", "0.9"], "--min-precision needs --score-threshold val"),
                         (["val", "--min-precision", "1.5"], "expected a number in [0, 1], got '1.5'")):
        with pytest.raises(SystemExit):
            evaluate.parse_args(args + bad)
        assert message in capsys.readouterr().err


def test_model_mode_says_when_no_val_threshold_reaches_the_min_precision(tiny_run, tmp_path, monkeypatch, capsys):
    from mrcnn_tf.evaluation import commands

    run, data = tiny_run
    _val_and_test_patients(run)
    point = dict(threshold=0.25, precision=0.5, f1=0.6, min_precision=0.97, min_precision_met=False)
    asked = []
    monkeypatch.setattr(commands, "choose_score_threshold",
                        lambda model, reader, items, min_precision: asked.append(min_precision) or point)
    out = tmp_path / "report"
    assert evaluate.main(["--model", str(run), "--data", str(data), "--out", str(out), "--score-threshold", "val",
                          "--min-precision", "0.97"]) == 0
    assert "no score threshold reaches precision 0.97 on the validation split" in capsys.readouterr().err
    figures = json.loads((out / "report.json").read_text())
    assert figures["thresholds"]["score"] == 0.25
    assert figures["source"]["score_threshold_chosen_on_val"]["min_precision_met"] is False
    assert asked == [0.97]  # the threshold was chosen with the asked precision


def test_model_mode_passes_the_min_precision_to_the_threshold_choice(monkeypatch):
    from mrcnn_tf.evaluation import commands

    calls = []
    monkeypatch.setattr(commands, "evaluate_run", lambda *a, **k: calls.append((a, k)) or {})
    base = ["--model", "run", "--data", "data", "--out", "out", "--score-threshold", "val"]
    assert evaluate.main(base + ["--min-precision", "0.97"]) == 0
    assert evaluate.main(base) == 0
    (args, kwargs), (_, default) = calls
    assert args[2:] == ("test", "out") and kwargs["score_threshold"] == "val"
    assert kwargs["min_precision"] == 0.97 and default["min_precision"] == 0.0


# --- NIfTI volumes -----------------------------------------------------------------------------------------------


def _lgg_and_nifti(tmp_path):
    """Two sample patients as an LGG folder and, converted by datasets/lgg_to_nifti.py, as nnU-Net NIfTI cases."""
    import importlib.util
    import shutil

    sample = os.path.join(PROJECT, "datasets", "sample")
    lgg_root = tmp_path / "lgg"
    for folder in ("TCGA_HT_7680_19970202", "TCGA_HT_7602_19951103"):
        shutil.copytree(os.path.join(sample, folder), lgg_root / folder)
    spec = importlib.util.spec_from_file_location("lgg_to_nifti", os.path.join(PROJECT, "datasets", "lgg_to_nifti.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.convert(str(lgg_root), str(tmp_path / "nifti"), "nnunet", spacing=(1.0, 1.0, 3.0))
    return lgg_root, tmp_path / "nifti"


def _without_sources(figures):
    return {key: value for key, value in figures.items() if key not in ("source", "volumes")}


def test_model_mode_on_nifti_cases_gives_the_tiff_figures_and_the_volume_figures(tiny_run, tmp_path):
    run, _ = tiny_run
    lgg_root, nifti_root = _lgg_and_nifti(tmp_path)
    common = ["--model", str(run), "--split", "all", "--score-threshold", "0.3"]
    assert evaluate.main(common + ["--data", str(lgg_root), "--out", str(tmp_path / "tiff")]) == 0
    assert evaluate.main(common + ["--data", str(nifti_root), "--out", str(tmp_path / "nifti")]) == 0
    tiff = json.loads((tmp_path / "tiff" / "report.json").read_text())
    volume = json.loads((tmp_path / "nifti" / "report.json").read_text())
    assert tiff["n_images"] == volume["n_images"] == 19
    assert tiff["image_level"]["tp"] + tiff["image_level"]["fp"] > 0  # the untrained model does find things
    assert _without_sources(volume) == _without_sources(tiff)
    assert not (tmp_path / "tiff" / "volume_report.json").exists()
    figures = json.loads((tmp_path / "nifti" / "volume_report.json").read_text())
    assert [row["case"] for row in figures["cases"]] == ["TCGA_HT_7602", "TCGA_HT_7680"]
    true_voxels = {"TCGA_HT_7602": 6946, "TCGA_HT_7680": 2059}  # the sample's mask pixels (1 x 1 x 3 mm voxels)
    for row in figures["cases"]:
        assert row["true_ml"] == pytest.approx(true_voxels[row["case"]] * 0.003)
        assert 0 <= row["dice"] <= 1 and row["abs_error_ml"] == pytest.approx(abs(row["predicted_ml"] - row["true_ml"]))
    assert figures["mean"]["cases"] == 2 and figures["score_threshold"] == 0.3
    assert "| TCGA_HT_7602 |" in (tmp_path / "nifti" / "volume_report.md").read_text()


def test_the_volume_flags_override_what_the_run_recorded(tiny_run, tmp_path):
    run, _ = tiny_run
    _, nifti_root = _lgg_and_nifti(tmp_path)
    out = tmp_path / "tumour_slices"
    assert evaluate.main(["--model", str(run), "--data", str(nifti_root), "--split", "all", "--slices", "tumour",
                          "--out", str(out)]) == 0
    figures = json.loads((out / "report.json").read_text())
    assert figures["n_images"] == figures["n_images_with_tumour"] == 10  # 7 + 3 slices with tumour
    volume = json.loads((out / "volume_report.json").read_text())  # still over the whole volumes
    assert volume["cases"][0]["true_ml"] == pytest.approx(6946 * 0.003)
    assert evaluate.main(["--model", str(run), "--data", str(nifti_root), "--split", "all", "--modalities", "t2",
                          "--out", str(tmp_path / "x")]) == 2  # no such modality: an error naming the case
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--model", "r", "--data", "d", "--out", "o", "--slices", "half"])

"""Smoke test of train.py: a 2-step run on a generated LGG-layout folder writes a complete, loadable run folder.

The run (one subprocess, ~1.5 minutes on 2 CPU cores, most of it tracing the train step) is shared by the tests
of this module; train.py's default configuration at ``--image-size 64`` still uses anchors up to 256 px, which
is fine for a smoke run. Data: 2 patients x 3 slices of 96 px, ellipse tumours, one tumour-free slice each.
"""
import collections
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
import tensorflow as tf
import tifffile

from conftest import LGG_ELLIPSES, LGG_PATIENTS, write_lgg_folder

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATIENTS, ELLIPSES = LGG_PATIENTS, LGG_ELLIPSES


def _run_train(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The finished run: ``(completed process, data folder, run folder)``."""
    base = tmp_path_factory.mktemp("train_smoke")
    data, out = str(base / "data"), str(base / "run")
    write_lgg_folder(data)
    result = _run_train(
        "--data", data, "--out", out, "--epochs", "1", "--steps-per-epoch", "2", "--image-size", "64",
        "--predictions", "2", "--split-ratios", "0.5", "0.5", "0",  # one patient to train on, one to validate
        "--minutes", "30",  # a time budget the run never reaches: its clock is still kept
        "--empty-slice-repeat", "2",
    )
    return result, data, out


def _weight_arrays(path):
    """The model variables of a ``.weights.h5`` file (optimizer state left out), as a list of arrays."""
    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: arrays.append(obj[()])
            if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer/") else None
        )
    return arrays


def _fingerprints(arrays):
    """A multiset of (shape, exact bytes) for order-free comparison of two sets of variables."""
    return collections.Counter((a.shape, np.ascontiguousarray(a, np.float32).tobytes()) for a in arrays)


def test_train_script_exits_cleanly(run):
    result, _, out = run
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"run written to {out}" in result.stdout
    assert "Traceback" not in result.stderr


def test_run_folder_records_the_config_and_history(run):
    _, _, out = run
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    assert config["image_size"] == 64
    assert config["train"]["epochs"] == 1 and config["train"]["steps_per_epoch"] == 2
    assert config["train"]["empty_slice_repeat"] == 2
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert rows[0]["epoch"] == "0"
    assert math.isfinite(float(rows[0]["loss"])) and float(rows[0]["loss"]) > 0


def test_run_folder_holds_final_weights_and_a_checkpoint(run):
    _, _, out = run
    assert os.path.isfile(os.path.join(out, "model.weights.h5"))
    # One epoch of two steps: the resumable state was saved at its end.
    assert tf.train.latest_checkpoint(os.path.join(out, "state")).endswith("ckpt-2")


def test_run_folder_holds_predictions_and_overlays(run):
    _, data, out = run
    with open(os.path.join(out, "predictions", "predictions.json")) as f:
        records = json.load(f)
    assert len(records) == 2
    # Half with a tumour, half without: slice 1 is tumour-free, slices 2-3 hold tumours.
    slice_numbers = sorted(int(r["image"][: -len(".tif")].rsplit("_", 1)[1]) for r in records)
    assert slice_numbers[0] == 1 and slice_numbers[1] in (2, 3)
    for record in records:
        assert record["image"].startswith(data) and os.path.isfile(record["image"])
        n = len(record["scores"])
        assert len(record["boxes_yxyx"]) == len(record["classes"]) == len(record["mask_pixels"]) == n
        assert all(len(box) == 4 for box in record["boxes_yxyx"])
        assert all(0.0 <= s <= 1.0 for s in record["scores"])
        name = os.path.splitext(os.path.basename(record["image"]))[0]
        overlay = cv2.imread(os.path.join(out, "predictions", name + ".png"))
        assert overlay is not None and overlay.shape == (64, 64, 3)


def test_load_run_restores_the_saved_weights(run):
    _, data, out = run
    from mrcnn_tf import inference, training  # TensorFlow only for the tests that need it

    model = training.load_run(out)
    assert model.config.image_size == 64
    saved = _fingerprints(_weight_arrays(os.path.join(out, "model.weights.h5")))
    loaded = _fingerprints([w.numpy() for w in model.weights])
    assert loaded == saved  # every variable holds exactly a saved value, none is left at its initial value
    image = tifffile.imread(os.path.join(data, PATIENTS[0], f"{PATIENTS[0]}_3.tif"))
    first, second = inference.detect(model, image), inference.detect(model, image)
    assert first["masks"].shape[1:] == (96, 96)
    for key in ("boxes", "scores", "classes", "masks"):
        np.testing.assert_array_equal(first[key], second[key])


def test_best_weights_load_and_the_run_keeps_its_clock_and_steps(run, tmp_path):
    _, _, out = run
    from mrcnn_tf import training
    from mrcnn_tf.errors import ConfigError

    assert os.path.isfile(os.path.join(out, "best.weights.h5"))
    # After 2 steps the best weights equal the final ones: a copy with distinct best weights tells them apart.
    copy = tmp_path / "run"
    copy.mkdir()
    shutil.copy(os.path.join(out, "config.json"), copy)
    shutil.copy(os.path.join(out, "model.weights.h5"), copy)
    model = training.load_run(out)
    model.weights[0].assign(model.weights[0] + 1.0)
    model.save_weights(str(copy / "best.weights.h5"))
    best = training.load_run(str(copy), "best")
    np.testing.assert_array_equal(best.weights[0].numpy(), model.weights[0].numpy())
    final = training.load_run(str(copy))
    assert not np.array_equal(final.weights[0].numpy(), best.weights[0].numpy())
    with pytest.raises(ConfigError, match="'final' or 'best'"):
        training.load_run(out, "last")
    clock = json.load(open(os.path.join(out, "train_time.json")))
    assert clock["step"] == 2 and 0 < clock["train_seconds"] < 600 and clock["budget_seconds"] == 1800
    history = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
    assert [row["step"] for row in history] == ["2"]


def test_missing_data_folder_exits_with_code_2_naming_it(tmp_path):
    missing = str(tmp_path / "no_such_data")
    result = _run_train("--data", missing, "--out", str(tmp_path / "run"), "--epochs", "1")
    assert result.returncode == 2
    assert missing in result.stderr
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.stderr


def test_run_folder_has_validation_figures_tensorboard_and_resumable_state(run):
    result, _, out = run
    assert result.returncode == 0, result.stderr[-2000:]
    history = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
    assert {"val_box_ap50", "val_mask_ap50", "val_f1"} <= set(history[0])
    assert math.isfinite(float(history[0]["val_loss"]))  # validation losses of the validation patient
    events = [n for n in os.listdir(os.path.join(out, "tensorboard")) if n.startswith("events.out.tfevents")]
    assert events and os.path.getsize(os.path.join(out, "tensorboard", events[0])) > 0
    assert os.path.isfile(os.path.join(out, "state", "checkpoint"))
    split = json.load(open(os.path.join(out, "splits.json")))
    assert set(split["train"]).isdisjoint(split["val"]) and set(split["train"]).isdisjoint(split["test"])
    assert os.path.isfile(os.path.join(out, "val_report", "report.json"))
    assert os.path.isfile(os.path.join(out, "export", "saved_model.pb"))
    assert json.load(open(os.path.join(out, "export", "export.json")))["image_size"] == 64

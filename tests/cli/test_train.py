"""mrcnn_tf.cli.train (``mrcnn-train``, ``python train.py``): flags and presets to a config, the time budget's
schedule fitting, and a smoke run of the top-level ``train.py`` that writes a complete, loadable run folder.

The smoke run (one subprocess, ~1.5 minutes on 2 CPU cores, most of it tracing the train step) is shared by the
tests that take the ``run`` fixture; the default configuration at ``--image-size 64`` still uses anchors up to
256 px, which is fine for a smoke run. Data: 2 patients x 3 slices of 96 px, ellipse tumours, one tumour-free
slice each. The other tests call ``main`` in-process with ``training.train`` (and the step timing) replaced.
"""
import collections
import csv
import json
import math
import os
import subprocess
import sys

import cv2
import h5py
import numpy as np
import pytest
import tensorflow as tf
import tifffile

from conftest import LGG_ELLIPSES, LGG_PATIENTS, heavy_modules_after, tiny_config, write_lgg_folder
from mrcnn_tf import budget, runs, training
from mrcnn_tf.cli import train as train_cli
from mrcnn_tf.config import Config, RuntimeConfig
from mrcnn_tf.errors import ConfigError

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATIENTS, ELLIPSES = LGG_PATIENTS, LGG_ELLIPSES
REQUIRED = ["--data", "DATA", "--out", "OUT"]


def config_of(*flags):
    """The config ``mrcnn-train`` would train with, given ``flags`` besides ``--data`` and ``--out``."""
    return train_cli.config_from_args(train_cli.parse_args(REQUIRED + list(flags)))


# --- flags and presets -----------------------------------------------------------------------------------------


def test_no_flags_give_the_package_defaults_and_preset_paper_the_same():
    assert config_of() == Config()
    assert config_of("--preset", "paper") == Config()


def test_preset_best_gives_the_best_recipe():
    config = config_of("--preset", "best")
    assert config == Config.from_preset("best")
    assert (config.train.learning_rate, config.train.lr_schedule, config.train.empty_slice_repeat) == (0.01, "cosine",
                                                                                                      2)


def test_crop_size_flag_sets_training_on_crops_and_is_checked():
    assert config_of("--crop-size", "192").train.crop_size == 192
    with pytest.raises(ConfigError, match="crop_size"):
        config_of("--crop-size", "100")


def test_optimizer_flag_picks_adamw():
    assert config_of("--optimizer", "adamw").train.optimizer == "adamw"
    assert config_of().train.optimizer == "sgd"


def test_given_flags_are_keyed_as_written_for_a_resumed_run_to_name_them():
    args = train_cli.parse_args(REQUIRED + ["--lr-schedule", "cosine", "--image-size", "128"])
    assert train_cli.given_flags(args) == {"--lr-schedule": ("train", "lr_schedule", "cosine"),
                                           "--image-size": (None, "image_size", 128)}


def test_a_flag_overrides_the_preset_and_keeps_the_rest_of_it():
    config = config_of("--preset", "best", "--lr", "0.005", "--epochs", "3")
    assert (config.train.learning_rate, config.train.epochs) == (0.005, 3)
    assert config == Config.from_preset("best").replace(train={"learning_rate": 0.005, "epochs": 3})


def test_a_flag_overrides_the_config_file(tmp_path):
    path = str(tmp_path / "tiny.json")
    tiny_config().to_json(path)
    assert config_of("--config", path, "--epochs", "3") == tiny_config(train={"epochs": 3})


def test_jit_compile_is_a_runtime_switch():
    config = config_of("--jit-compile")
    assert config.runtime == RuntimeConfig(jit_compile=True)  # the others: the device's policy
    assert config.train == Config().train


@pytest.mark.parametrize("flags, message", [
    (["--preset", "best", "--config", "c.json"], "not allowed with argument"),
    (["--preset", "fastest"], "invalid choice: 'fastest'"),
    (["--optimizer", "adam"], "invalid choice: 'adam'"),
])
def test_bad_starts_are_usage_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as stop:
        train_cli.parse_args(REQUIRED + flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_parsing_the_flags_loads_no_tensorflow():
    # --help and a usage error answer at once: TensorFlow loads only when a run starts.
    code = "from mrcnn_tf.cli import train; train.config_from_args(train.parse_args(['--data', 'd', '--out', 'o']))"
    assert heavy_modules_after(code) == []


# --- the time budget: --fit-schedule, --preset best --minutes --------------------------------------------------


@pytest.fixture
def measured(monkeypatch):
    """Replaces the step timing by 2.0 s a step; the list collects ``(config, data_root, format, skip_bad)``."""
    calls = []
    monkeypatch.setattr(budget, "measure_step_seconds", lambda *args: calls.append(args) or 2.0)
    return calls


@pytest.fixture
def trained(monkeypatch):
    """Replaces ``training.train``: the list collects the configs ``main`` trains."""
    configs = []
    monkeypatch.setattr(training, "train", lambda config, *args, **kwargs: configs.append(config))
    return configs


def test_fit_schedule_trains_the_planned_schedule(trained, measured, tmp_path):
    out = str(tmp_path / "run")
    argv = ["--data", "DATA", "--out", out, "--lr-schedule", "cosine", "--steps-per-epoch", "50", "--minutes", "10"]
    assert train_cli.main(argv + ["--fit-schedule", "--format", "lgg"]) == 0
    assert [args[1:] for args in measured] == [("DATA", "lgg", False)]
    planned = json.load(open(runs.path(out, runs.SCHEDULE_FILE)))
    train = trained[0].train
    assert train.epochs * train.steps_per_epoch == planned["steps"] and planned["steps"] > 50
    assert train.steps_per_epoch != 50  # resized so that whole epochs add up to the planned steps

    assert train_cli.main(argv) == 0  # without the flag: the schedule as given, nothing timed
    assert trained[1].train.steps_per_epoch == 50 and len(measured) == 1


def test_fit_schedule_refuses_what_it_cannot_plan(trained, measured, tmp_path, capsys):
    out = str(tmp_path / "run")
    main = train_cli.main
    assert main(["--data", "DATA", "--out", out, "--minutes", "10", "--fit-schedule", "--lr-schedule", "constant"]) == 2
    assert "--lr-schedule cosine" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--data", "DATA", "--out", out, "--fit-schedule", "--lr-schedule", "cosine"])
    assert stop.value.code == 2 and "--minutes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["--data", "DATA", "--out", out, "--minutes", "0"])
    assert stop.value.code == 2 and "--minutes must be positive" in capsys.readouterr().err
    mirrored = ["--strategy", "mirrored", "--minutes", "10", "--fit-schedule", "--lr-schedule", "cosine"]
    assert main(["--data", "DATA", "--out", out] + mirrored) == 2
    assert "--strategy mirrored" in capsys.readouterr().err
    assert not trained and not measured


def test_preset_best_with_minutes_fits_its_schedule_to_them(trained, measured, tmp_path):
    out = str(tmp_path / "best")
    assert train_cli.main(["--data", "DATA", "--out", out, "--preset", "best", "--minutes", "10"]) == 0
    assert [args[1:] for args in measured] == [("DATA", "auto", False)]
    planned = json.load(open(runs.path(out, runs.SCHEDULE_FILE)))
    train = trained[0].train
    assert train.epochs * train.steps_per_epoch == planned["steps"]
    assert trained[0] == budget.fit_schedule(Config.from_preset("best"), 10, 2.0)  # the preset, sized

    # Without a budget the preset's own schedule; the paper's constant rate is never fitted.
    assert train_cli.main(["--data", "DATA", "--out", str(tmp_path / "b"), "--preset", "best"]) == 0
    assert train_cli.main(["--data", "DATA", "--out", str(tmp_path / "p"), "--preset", "paper", "--minutes", "10"]) == 0
    assert trained[1:] == [Config.from_preset("best"), Config.from_preset("paper")]
    assert len(measured) == 1


def test_preset_best_trains_unfitted_where_its_schedule_cannot_be_fitted(trained, measured, tmp_path):
    # The recipe fits when it can; asked for a constant rate or several devices it trains the schedule as given.
    base = ["--data", "DATA", "--out", str(tmp_path / "run"), "--preset", "best", "--minutes", "10"]
    assert train_cli.main(base + ["--lr-schedule", "constant"]) == 0
    assert train_cli.main(base + ["--strategy", "mirrored"]) == 0
    best = Config.from_preset("best")
    assert trained == [best.replace(train={"lr_schedule": "constant"}), best.replace(train={"strategy": "mirrored"})]
    assert not measured


# --- a smoke run of the top-level train.py ---------------------------------------------------------------------


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
    from mrcnn_tf import inference

    model = runs.load_run(out)
    assert model.config.image_size == 64
    saved = _fingerprints(_weight_arrays(os.path.join(out, "model.weights.h5")))
    loaded = _fingerprints([w.numpy() for w in model.weights])
    assert loaded == saved  # every variable holds exactly a saved value, none is left at its initial value
    image = tifffile.imread(os.path.join(data, PATIENTS[0], f"{PATIENTS[0]}_3.tif"))
    first, second = inference.detect(model, image), inference.detect(model, image)
    assert first["masks"].shape[1:] == (96, 96)
    for key in ("boxes", "scores", "classes", "masks"):
        np.testing.assert_array_equal(first[key], second[key])


def test_best_weights_load_and_the_run_keeps_its_clock_and_steps(run):
    _, _, out = run
    # One validation, at the end of the only epoch: the best weights are the final ones.
    best = json.load(open(os.path.join(out, "best.json")))
    assert best["step"] == 2
    saved = _fingerprints(_weight_arrays(os.path.join(out, "model.weights.h5")))
    assert _fingerprints([w.numpy() for w in runs.load_run(out, "best").weights]) == saved
    clock = json.load(open(os.path.join(out, "train_time.json")))
    assert clock["step"] == 2 and 0 < clock["train_seconds"] < 600 and clock["budget_seconds"] == 1800
    history = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
    assert [row["step"] for row in history] == ["2"]


def test_the_run_folder_is_the_one_runs_names_and_resumes(run):
    _, _, out = run
    names = (runs.CONFIG_FILE, runs.WEIGHTS_FILE, runs.BEST_WEIGHTS_FILE, runs.BEST_FILE, runs.TIME_FILE,
             runs.HISTORY_FILE, runs.STEPS_FILE, runs.STATE_DIR, runs.TENSORBOARD_DIR, runs.EXPORT_DIR,
             runs.PREDICTIONS_DIR, runs.VAL_REPORT_DIR, runs.SPLITS_FILE)
    assert [name for name in names if not os.path.exists(runs.path(out, name))] == []
    assert not os.path.exists(runs.path(out, runs.SCHEDULE_FILE))  # no schedule was fitted
    config, resuming = runs.resumable_config(out, Config())
    assert resuming and config == runs.read_config(out) and config.image_size == 64


def test_missing_data_folder_exits_with_code_2_naming_it(tmp_path):
    # The console script, from a folder outside the project: the installed package, not the checkout's files.
    missing = str(tmp_path / "no_such_data")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "mrcnn-train"), "--data", missing, "--out",
         str(tmp_path / "run"), "--epochs", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
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
    # TF Serving's layout: RUN/export/1/.
    assert os.path.isfile(os.path.join(out, "export", "1", "saved_model.pb"))
    assert json.load(open(os.path.join(out, "export", "1", "export.json")))["image_size"] == 64
    # A run folder a laptop holds: one checkpoint, weights files without the optimizer's momentum.
    assert len([name for name in os.listdir(os.path.join(out, "state")) if name.endswith(".index")]) == 1
    state = sum(os.path.getsize(os.path.join(out, "state", name)) for name in os.listdir(os.path.join(out, "state"))
                if ".data-" in name)
    assert os.path.getsize(os.path.join(out, "model.weights.h5")) < 0.6 * state  # the state also holds momentum


# --- volume data: the data section's flags, and a run on NIfTI cases ---------------------------------------------


def test_volume_flags_fill_the_data_section():
    config = config_of("--modalities", "flair,t1ce", "--label-map", "1=core,4=core,2=oedema", "--slices", "every:2")
    assert config.data.modalities == ("flair", "t1ce") and config.data.slices == "every:2"
    assert config.data.label_map == ((1, "core"), (4, "core"), (2, "oedema"))
    assert config.replace(data=Config().data) == Config()  # nothing else changed
    assert train_cli.parse_args(REQUIRED + ["--format", "nifti"]).format == "nifti"


@pytest.mark.parametrize("flags, message", [
    (["--slices", "some"], "expected all, tumour or every:K"),
    (["--slices", "every:0"], "expected all, tumour or every:K"),
    (["--label-map", "tumour"], "expected VALUE=NAME pairs"),
    (["--modalities", "flair,,t2"], "expected names or indices separated by commas"),
    (["--modalities", "a,b,c,d"], "one to three non-empty names"),
])
def test_bad_volume_flags_are_errors(flags, message, capsys):
    try:
        config_of(*flags)
    except SystemExit as stop:
        assert stop.code == 2
        assert message in capsys.readouterr().err
    except ConfigError as error:  # four names parse, and the data section refuses them
        assert message in str(error)
    else:
        pytest.fail(f"{flags} accepted")


def test_a_nifti_run_records_the_modalities_it_resolved_and_a_resumed_run_keeps_its_own(trained, tmp_path):
    from volume_data import CROP, sample_stack, write_brats_case

    images, labels = sample_stack(crop=CROP)
    data = str(tmp_path / "cases")
    write_brats_case(data, "C1", images, labels, channels=("t1ce", "flair", "t1"))
    out = str(tmp_path / "run")
    assert train_cli.main(["--data", data, "--out", out]) == 0
    assert trained[-1].data.modalities == ("flair", "t1", "t1ce")  # all three, named: the run records them
    assert train_cli.main(["--data", data, "--out", out, "--modalities", "T1CE", "--slices", "tumour"]) == 0
    assert trained[-1].data.modalities == ("t1ce",) and trained[-1].data.slices == "tumour"
    assert train_cli.main(["--data", data, "--out", out, "--modalities", "adc"]) == 2  # not in the case: named
    # A run folder with a checkpoint is resumed with the data section it recorded, whatever the flags say.
    os.makedirs(os.path.join(out, "state"))
    recorded = tiny_config().replace(data={"modalities": ("flair",)})
    runs.write_config(out, recorded)
    with open(os.path.join(out, "state", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    open(os.path.join(out, "state", "ckpt-1.index"), "w").close()
    assert train_cli.main(["--data", data, "--out", out, "--modalities", "t1"]) == 0
    assert trained[-1].data == recorded.data


def test_training_on_nifti_cases_writes_a_run_with_volume_figures(tmp_path):
    """A real (tiny) run on two NIfTI cases: it trains, records its data section, and its validation report holds
    the volume figures."""
    from volume_data import CROP, sample_stack, write_brats_case

    images, labels = sample_stack(crop=CROP)
    data = str(tmp_path / "cases")
    for case_id in ("CASE_A", "CASE_B"):
        write_brats_case(data, case_id, images, labels)
    config_file = str(tmp_path / "tiny.json")
    tiny_config().to_json(config_file)
    out = str(tmp_path / "run")
    assert train_cli.main(["--data", data, "--out", out, "--format", "nifti", "--config", config_file,
                           "--modalities", "t1,flair,t1ce", "--epochs", "1", "--steps-per-epoch", "2",
                           "--split-ratios", "0.5", "0.5", "0", "--no-export", "--predictions", "0",
                           "--val-every", "0"]) == 0
    recorded = Config.from_json(os.path.join(out, "config.json"))
    assert recorded.data.modalities == ("t1", "flair", "t1ce") and recorded.class_names == ("tumour",)
    split = json.load(open(os.path.join(out, "splits.json")))
    assert sorted(split["train"] + split["val"]) == ["CASE_A", "CASE_B"] and split["by"] == "patient"
    volume_report = json.load(open(os.path.join(out, "val_report", "volume_report.json")))
    assert [row["case"] for row in volume_report["cases"]] == split["val"]
    assert volume_report["cases"][0]["true_ml"] == pytest.approx(labels.sum() * 0.9 * 0.8 * 3.0 / 1000)
    assert os.path.isfile(os.path.join(out, "val_report", "volume_report.md"))

"""benchmarks/accuracy.py: it trains the package's presets (no recipe of its own), plans a schedule only for the
presets that fit one, scores the test split as the preset says, and its summary reads the report."""
import inspect
import json

import pytest
from conftest import load_benchmark

from mrcnn_tf import config as config_lib

def _interval(low, high):
    return {"value": (low + high) / 2, "low": low, "high": high}


REPORT = {  # the parts of an evaluation report (report.json) the script reads
    "image_level": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "tp": 8, "fp": 1, "fn": 2, "tn": 5},
    "image_level_localised": {"precision": 0.8, "recall": 0.7, "f1": 0.747, "mislocated": 1},
    "iou": {"image_mean": 0.6, "matched_pair_mean": 0.7}, "ap": {"box_ap50": 0.91, "mask_ap50": None},
    "coco": {"box": {"ap": 0.4}, "mask": {"ap": 0.35}},
    "dice": {"per_patient_mean": 0.8, "per_slice_mean": 0.75},
    "thresholds": {"score": 0.3}, "source": {"score_threshold_chosen_on_val": {"threshold": 0.3}},
    "intervals": {
        "bootstrap": {"unit": "patient", "n_units": 10, "resamples": 1000, "seed": 0, "interval": "percentile"},
        "image_level": {"precision": _interval(0.55, 0.98), "recall": _interval(0.49, 0.94),
                        "f1": _interval(0.61, 0.95)},
        "image_level_localised": {"precision": _interval(0.44, 0.96), "recall": _interval(0.4, 0.9),
                                  "f1": _interval(0.5, 0.9)},
        "ap": {"box_ap50": _interval(0.8, 0.97123456), "mask_ap50": {"value": None, "low": None, "high": None}},
        "dice": {"per_patient_mean": _interval(0.7, 0.88)},
    },
}


@pytest.fixture(scope="module")
def accuracy():
    return load_benchmark("accuracy")


def test_the_script_has_no_recipe_of_its_own(accuracy):
    for name in ("CONFIGS", "SCORING", "make_config"):
        assert not hasattr(accuracy, name)
    source = inspect.getsource(accuracy)
    for setting in ("learning_rate", "lr_schedule", "steps_per_epoch", "min_precision", "empty_slice_repeat"):
        assert setting not in source  # every training or scoring setting comes from mrcnn_tf.config.PRESETS


def test_preset_flag_takes_the_package_presets_and_defaults_to_best(accuracy, monkeypatch, capsys):
    chosen = []
    monkeypatch.setattr(accuracy, "run", lambda args: chosen.append(args.preset))
    for flags, want in (([], "best"), (["--preset", "paper"], "paper"), (["--preset", "best"], "best")):
        assert accuracy.main(["--data", "d", "--out", "o"] + flags) == 0
        assert chosen.pop() == want
    assert {"paper", "best"} <= set(config_lib.PRESETS)
    for flags in (["--preset", "fastest"], ["--config", "best"]):  # an unknown preset; the old flag is gone
        with pytest.raises(SystemExit) as stopped:
            accuracy.main(["--data", "d", "--out", "o"] + flags)
        assert stopped.value.code == 2
    assert chosen == []
    assert "paper" in capsys.readouterr().err  # the error lists the choices


def test_paper_preset_is_table_2_without_a_planned_schedule(accuracy, monkeypatch):
    monkeypatch.setattr(accuracy.budget, "plan_schedule", lambda *args: pytest.fail("paper plans no schedule"))
    config = accuracy.training_config("paper", "data", "out", minutes=30)
    assert config == config_lib.Config.from_preset("paper")
    train = config.train
    assert config.image_size == 256
    assert (train.batch_size, train.learning_rate, train.steps_per_epoch, train.epochs) == (1, 0.001, 200, 30)
    assert train.lr_schedule == "constant"


def test_best_preset_has_its_schedule_sized_to_the_budget(accuracy, monkeypatch):
    planned = []

    def plan_schedule(config, data_root, out_dir, minutes):
        planned.append((config, data_root, out_dir, minutes))
        return config.replace(train={"epochs": 3})

    monkeypatch.setattr(accuracy.budget, "plan_schedule", plan_schedule)
    config = accuracy.training_config("best", "data", "out", minutes=75)
    assert planned == [(config_lib.Config.from_preset("best"), "data", "out", 75)]
    assert config.train.epochs == 3  # the planned schedule is the one trained


def fake_run(accuracy, monkeypatch, tmp_path, preset, plan_schedule):
    """Training, plotting and scoring replaced, and a run folder of ``preset`` with one step and one epoch:
    returns the lists the configs trained and the ``(args, kwargs)`` scored are appended to."""
    from mrcnn_tf import runs, training
    from mrcnn_tf.evaluation import commands, plots

    trained, scored = [], []
    monkeypatch.setattr(accuracy.budget, "plan_schedule", plan_schedule)
    monkeypatch.setattr(training, "train", lambda config, data, out, **kwargs: trained.append(config)
                        or runs.write_config(out, config))
    monkeypatch.setattr(plots, "plot_learning_curve", lambda *args: None)
    monkeypatch.setattr(commands, "evaluate_run", lambda *args, **kwargs: scored.append((args, kwargs)) or REPORT)
    (tmp_path / runs.HISTORY_FILE).write_text("epoch,step\n0,10\n")
    (tmp_path / runs.STEPS_FILE).write_text("step,loss\n10,0.5\n")
    runs.write_config(str(tmp_path), config_lib.Config.from_preset(preset))
    return trained, scored


@pytest.mark.parametrize("preset", ["paper", "best"])
def test_run_trains_the_preset_and_scores_the_test_split_as_it_says(accuracy, tmp_path, monkeypatch, preset):
    trained, scored = fake_run(accuracy, monkeypatch, tmp_path, preset, lambda config, *args: config)
    args = accuracy.argparse.Namespace(data="data", out=str(tmp_path), minutes=None, preset=preset, set=[],
                                       steps=None, split="test", tta=False)
    summary = accuracy.run(args)
    assert trained == [config_lib.Config.from_preset(preset)]
    assert [kwargs for _, kwargs in scored] == [
        {"weights": "final", "flip_tta": False, **config_lib.preset(preset).scoring}]  # final: no best.json
    assert summary["preset"] == preset and "config" not in summary
    assert summary["steps"] == 10 and summary["test"]["f1"] == 0.847
    assert summary["train_settings"]["learning_rate"] == config_lib.Config.from_preset(preset).train.learning_rate
    assert (tmp_path / "accuracy.json").exists()


def test_best_preset_warms_up_then_decays_to_zero(accuracy):
    from mrcnn_tf.schedules import WarmupSchedule

    train = config_lib.Config.from_preset("best").train
    end = train.epochs * train.steps_per_epoch
    schedule = WarmupSchedule(train.learning_rate, train.warmup_steps, end, train.lr_schedule)
    assert float(schedule(train.warmup_steps)) == pytest.approx(train.learning_rate)
    assert float(schedule(end)) == pytest.approx(0.0, abs=1e-9)


def test_summary_reads_the_report(accuracy):
    summary = accuracy.summarise(REPORT)
    assert summary["f1"] == 0.847 and summary["box_ap50"] == 0.91 and summary["mask_ap50"] is None
    assert summary["coco_mask_ap"] == 0.35 and summary["dice_per_patient"] == 0.8 and summary["tn"] == 5
    assert summary["iou_per_slice_region"] == 0.6 and summary["iou_matched_pair"] == 0.7
    assert summary["f1_localised"] == 0.747 and summary["mislocated"] == 1
    intervals = summary["intervals"]
    assert intervals["precision"] == [0.55, 0.98] and intervals["box_ap50"] == [0.8, 0.9712]
    assert intervals["mask_ap50"] is None and intervals["dice_per_patient"] == [0.7, 0.88]
    assert intervals["f1_localised"] == [0.5, 0.9] and summary["intervals_bootstrap"]["unit"] == "patient"


def test_csv_columns_read_na_as_nan(accuracy, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,step,val_box_ap50\n0,200,NA\n1,400,0.5\n")
    columns = accuracy.read_columns(str(path))
    assert columns["step"] == [200.0, 400.0]
    assert columns["val_box_ap50"][0] != columns["val_box_ap50"][0] and columns["val_box_ap50"][1] == 0.5


def test_a_lever_run_takes_settings_a_step_budget_and_scores_validation(accuracy, tmp_path, monkeypatch):
    from mrcnn_tf import runs, training

    trained, scored = fake_run(accuracy, monkeypatch, tmp_path, "best",
                               lambda *args: pytest.fail("--steps plans no schedule"))
    given = []
    monkeypatch.setattr(training, "train", lambda config, data, out, **kwargs: trained.append(config)
                        or given.append(kwargs["given"]) or runs.write_config(out, config))
    assert accuracy.main(["--data", "data", "--out", str(tmp_path), "--steps", "3000", "--split", "val", "--tta",
                          "--set", "roi.mask_rois_per_image=8", "--set", "train.seed=1"]) == 0
    train = trained[0].train
    assert trained[0].roi.mask_rois_per_image == 8 and train.seed == 1 and train.learning_rate == 0.01
    assert train.epochs * train.steps_per_epoch == 3000 and train.lr_schedule == "cosine"
    (args, kwargs), = scored
    assert args[2] == "val" and args[3].endswith("val_report") and kwargs["flip_tta"] is True
    summary = json.loads((tmp_path / "accuracy.json").read_text())
    assert summary["split"] == "val" and summary["val"]["f1"] == 0.847 and "test" not in summary
    assert summary["settings"] == ["roi.mask_rois_per_image=8", "train.seed=1"] and summary["steps_budget"] == 3000
    assert given == [accuracy.given_settings(trained[0], ["roi.mask_rois_per_image=8", "train.seed=1"], 3000)]


def test_a_resumed_run_refuses_other_settings_or_steps_naming_each(accuracy):
    from mrcnn_tf import training
    from mrcnn_tf.config import ConfigError

    settings = ["train.learning_rate=0.02", "roi.mask_rois_per_image=8"]
    run_config = accuracy.training_config("best", "data", "out", None, settings, steps=3000)
    given = accuracy.given_settings(run_config, settings, 3000)
    assert given["--set train.learning_rate"] == ("train", "learning_rate", 0.02)
    epoch_steps = 3000 // run_config.train.epochs
    assert given["--steps 3000 (train.steps_per_epoch)"] == ("train", "steps_per_epoch", epoch_steps)
    assert training.resumed_config("RUN", run_config, given) == run_config  # the same command resumes
    assert training.resumed_config("RUN", run_config, {}) == run_config  # so does one without --set and --steps

    other = ["train.learning_rate=0.01", "roi.mask_rois_per_image=8", "image_size=320"]
    asked = accuracy.training_config("best", "data", "out", None, other, steps=6000)
    with pytest.raises(ConfigError) as error:
        training.resumed_config("RUN", run_config, accuracy.given_settings(asked, other, 6000))
    message = str(error.value)
    for part in ("--set train.learning_rate: the run has 0.02, given 0.01",
                 f"--set image_size: the run has {run_config.image_size}, given 320",
                 f"--steps 6000 (train.steps_per_epoch): the run has {run_config.train.steps_per_epoch}, given "
                 f"{asked.train.steps_per_epoch}"):
        assert part in message
    assert "mask_rois_per_image" not in message  # the setting that agrees is not named


def test_the_summary_records_the_runs_own_settings_when_resumed_without_them(accuracy, tmp_path, monkeypatch):
    from mrcnn_tf import runs, training

    trained, _ = fake_run(accuracy, monkeypatch, tmp_path, "best", lambda config, *args: config)
    run_config = accuracy.training_config("best", "data", "out", None, ["train.optimizer=adamw", "image_size=320",
                                                                         "train.epochs=8"], steps=3000)
    runs.write_config(str(tmp_path), run_config.replace(class_names=("tumour",)))
    monkeypatch.setattr(training, "train", lambda config, *args, **kwargs: trained.append(config))  # resumes
    assert accuracy.main(["--data", "data", "--out", str(tmp_path), "--split", "val"]) == 0
    summary = json.loads((tmp_path / "accuracy.json").read_text())
    assert summary["settings"] == ["image_size=320", "train.optimizer=adamw"]  # not the schedule, not the classes
    assert summary["train_settings"]["epochs"] * summary["train_settings"]["steps_per_epoch"] == 3000
    assert accuracy.run_settings(config_lib.Config.from_preset("best"), "best") == []
    assert accuracy.run_settings(config_lib.Config.from_preset("best"), "paper") != []


@pytest.mark.parametrize("flags", [["--steps", "3000"], ["--minutes", "20"]])
def test_the_epoch_length_cannot_be_set_where_the_schedule_is_sized(accuracy, tmp_path, capsys, flags):
    assert accuracy.main(["--data", "d", "--out", str(tmp_path), "--set", "train.steps_per_epoch=500"] + flags) == 2
    error = capsys.readouterr().err
    assert "--set train.steps_per_epoch=500" in error and "--steps" in error
    assert accuracy.training_config("paper", "d", "o", 20, ["train.steps_per_epoch=500"]).train.steps_per_epoch == 500


def test_an_unknown_setting_is_refused_naming_it(accuracy, tmp_path, capsys):
    assert accuracy.main(["--data", "d", "--out", str(tmp_path), "--set", "roi.no_such_key=1"]) == 2
    assert "roi.no_such_key" in capsys.readouterr().err

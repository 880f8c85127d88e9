"""benchmarks/accuracy.py: its configurations are valid, and its summary reads the report it wrote."""
import importlib.util
import os

import pytest

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("accuracy", os.path.join(PROJECT, "benchmarks", "accuracy.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_configuration_is_table_2(accuracy):
    config = accuracy.make_config("paper")
    assert config.image_size == 256
    train = config.train
    assert (train.batch_size, train.learning_rate, train.steps_per_epoch, train.epochs) == (1, 0.001, 200, 30)
    assert train.lr_schedule == "constant"


def test_best_configuration_warms_up_then_decays_to_zero(accuracy):
    from mrcnn_tf.schedules import WarmupSchedule

    train = accuracy.make_config("best").train
    end = train.epochs * train.steps_per_epoch
    schedule = WarmupSchedule(train.learning_rate, train.warmup_steps, end, train.lr_schedule)
    assert float(schedule(train.warmup_steps)) == pytest.approx(train.learning_rate)
    assert float(schedule(end)) == pytest.approx(0.0, abs=1e-9)


def test_summary_reads_the_report(accuracy):
    report = {
        "image_level": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "tp": 8, "fp": 1, "fn": 2, "tn": 5},
        "iou": {"instance_mean": 0.7}, "ap": {"box_ap50": 0.91, "mask_ap50": None},
        "coco": {"box": {"ap": 0.4}, "mask": {"ap": 0.35}},
        "dice": {"per_patient_mean": 0.8, "per_slice_mean": 0.75},
    }
    summary = accuracy.summarise(report)
    assert summary["f1"] == 0.847 and summary["box_ap50"] == 0.91 and summary["mask_ap50"] is None
    assert summary["coco_mask_ap"] == 0.35 and summary["dice_per_patient"] == 0.8 and summary["tn"] == 5


def test_csv_columns_read_na_as_nan(accuracy, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,step,val_box_ap50\n0,200,NA\n1,400,0.5\n")
    columns = accuracy.read_columns(str(path))
    assert columns["step"] == [200.0, 400.0]
    assert columns["val_box_ap50"][0] != columns["val_box_ap50"][0] and columns["val_box_ap50"][1] == 0.5


def test_fit_schedule_fills_the_budget_with_whole_epochs(accuracy):
    config = accuracy.make_config("best")  # 250-step epochs
    sized = accuracy.fit_schedule(config, minutes=75, step_seconds=1.5, margin=0.9)  # 2700 steps
    train = sized.train
    assert (train.epochs, train.steps_per_epoch) == (11, 245)
    assert 2650 < train.epochs * train.steps_per_epoch <= 2700
    assert sized.train.learning_rate == config.train.learning_rate and sized.image_size == config.image_size
    tiny = accuracy.fit_schedule(config, minutes=0.01, step_seconds=2.0, margin=0.9)
    assert (tiny.train.epochs, tiny.train.steps_per_epoch) == (1, 1)


def test_plan_schedule_measures_only_a_new_budgeted_decaying_run(accuracy, tmp_path):
    import json

    measured = []

    def measure(config, data_root):
        assert data_root == "DATA"
        measured.append(config)
        return 2.0

    best, paper = accuracy.make_config("best"), accuracy.make_config("paper")
    run = str(tmp_path / "run")
    assert accuracy.plan_schedule(best, "DATA", run, None, measure) is best  # no budget
    assert accuracy.plan_schedule(paper, "DATA", run, 75, measure) is paper  # the paper's constant rate: Table 2 as is
    assert not measured
    sized = accuracy.plan_schedule(best, "DATA", run, 10, measure)
    assert len(measured) == 1
    steps = sized.train.epochs * sized.train.steps_per_epoch
    assert steps <= 10 * 60 * accuracy.SCHEDULE_MARGIN / 2.0 and steps > 250
    with open(tmp_path / "run" / accuracy.SCHEDULE_FILE) as f:
        assert json.load(f)["steps"] == steps

    # A run folder with a checkpoint resumes with its own config: nothing is measured again.
    from mrcnn_tf import training

    sized.to_json(str(tmp_path / "run" / training.CONFIG_FILE))
    state = tmp_path / "run" / training.STATE_DIR
    state.mkdir()
    (state / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    (state / "ckpt-1.index").write_bytes(b"")
    assert accuracy.plan_schedule(best, "DATA", run, 10, measure) is best
    assert len(measured) == 1


def test_measure_step_seconds_times_train_steps_on_slices_spread_over_the_dataset(accuracy, tmp_path,
                                                                                  monkeypatch):
    from conftest import tiny_config, write_lgg_folder
    from mrcnn_tf import training

    write_lgg_folder(str(tmp_path))  # 6 slices of 96 px, resized to the config's 64
    decoded = []  # the reader positions decoded, per call
    load_examples = training.load_examples
    monkeypatch.setattr(training, "load_examples",
                        lambda *args, **kwargs: decoded.append(kwargs["positions"]) or load_examples(*args, **kwargs))
    seconds = accuracy.measure_step_seconds(tiny_config(), str(tmp_path), steps=2, warmup=1, slices=4)
    assert 0.0 < seconds < 60.0
    assert decoded == [[0, 2, 3, 5]]  # 4 of the 6, spread over both patients, and only those decoded

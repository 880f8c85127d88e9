"""benchmarks/accuracy.py: its configurations are valid, it scores the test split as each says, and its summary reads
the report."""
import pytest
from conftest import load_benchmark

REPORT = {  # the parts of an evaluation report (report.json) the script reads
    "image_level": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "tp": 8, "fp": 1, "fn": 2, "tn": 5},
    "iou": {"instance_mean": 0.7}, "ap": {"box_ap50": 0.91, "mask_ap50": None},
    "coco": {"box": {"ap": 0.4}, "mask": {"ap": 0.35}},
    "dice": {"per_patient_mean": 0.8, "per_slice_mean": 0.75},
    "thresholds": {"score": 0.3}, "source": {"score_threshold_chosen_on_val": {"threshold": 0.3}},
}


@pytest.fixture(scope="module")
def accuracy():
    return load_benchmark("accuracy")


def test_paper_configuration_is_table_2(accuracy):
    config = accuracy.make_config("paper")
    assert config.image_size == 256
    train = config.train
    assert (train.batch_size, train.learning_rate, train.steps_per_epoch, train.epochs) == (1, 0.001, 200, 30)
    assert train.lr_schedule == "constant"
    assert accuracy.SCORING["paper"] == {"score_threshold": 0.5}  # the paper's


def test_run_scores_the_test_split_as_its_configuration_says(accuracy, tmp_path, monkeypatch):
    from mrcnn_tf import training
    from mrcnn_tf.evaluation import commands, plots

    scored = []
    monkeypatch.setattr(accuracy.budget, "plan_schedule", lambda config, *args: config)
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: None)
    monkeypatch.setattr(plots, "plot_learning_curve", lambda *args: None)
    monkeypatch.setattr(commands, "evaluate_run", lambda *args, **kwargs: scored.append(kwargs) or REPORT)
    (tmp_path / training.HISTORY_FILE).write_text("epoch,step\n0,10\n")
    (tmp_path / training.STEPS_FILE).write_text("step,loss\n10,0.5\n")
    accuracy.make_config("best").to_json(str(tmp_path / training.CONFIG_FILE))
    args = accuracy.argparse.Namespace(data="data", out=str(tmp_path), minutes=None, config="best")
    summary = accuracy.run(args)
    assert scored == [{"weights": "final", "score_threshold": "val", "min_precision": 0.97}]
    assert summary["steps"] == 10 and summary["test"]["f1"] == 0.847


def test_best_configuration_warms_up_then_decays_to_zero(accuracy):
    from mrcnn_tf.schedules import WarmupSchedule

    train = accuracy.make_config("best").train
    end = train.epochs * train.steps_per_epoch
    schedule = WarmupSchedule(train.learning_rate, train.warmup_steps, end, train.lr_schedule)
    assert float(schedule(train.warmup_steps)) == pytest.approx(train.learning_rate)
    assert float(schedule(end)) == pytest.approx(0.0, abs=1e-9)


def test_summary_reads_the_report(accuracy):
    summary = accuracy.summarise(REPORT)
    assert summary["f1"] == 0.847 and summary["box_ap50"] == 0.91 and summary["mask_ap50"] is None
    assert summary["coco_mask_ap"] == 0.35 and summary["dice_per_patient"] == 0.8 and summary["tn"] == 5


def test_csv_columns_read_na_as_nan(accuracy, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,step,val_box_ap50\n0,200,NA\n1,400,0.5\n")
    columns = accuracy.read_columns(str(path))
    assert columns["step"] == [200.0, 400.0]
    assert columns["val_box_ap50"][0] != columns["val_box_ap50"][0] and columns["val_box_ap50"][1] == 0.5

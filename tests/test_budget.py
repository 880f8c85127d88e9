"""mrcnn_tf.budget: a cosine schedule sized to a time budget (``mrcnn-train --fit-schedule``, whose flags
tests/cli/test_train.py tests)."""
import json

import pytest

from mrcnn_tf import budget, runs, training
from mrcnn_tf.config import Config
from mrcnn_tf.errors import ConfigError

COSINE = Config().replace(train={"lr_schedule": "cosine", "steps_per_epoch": 250, "epochs": 20})
CONSTANT = Config().replace(train={"lr_schedule": "constant"})


@pytest.fixture
def measured(monkeypatch):
    """Replaces the step timing by 2.0 s a step; the list collects ``(config, data_root, format, skip_bad)``."""
    calls = []
    monkeypatch.setattr(budget, "measure_step_seconds", lambda *args: calls.append(args) or 2.0)
    return calls


def test_fit_schedule_fills_the_budget_in_the_configured_epochs():
    sized = budget.fit_schedule(COSINE, minutes=75, step_seconds=1.5, margin=0.9)  # 2700 steps
    train = sized.train
    assert (train.epochs, train.steps_per_epoch) == (20, 135)  # 20 validations, however long the budget
    assert budget.fit_schedule(COSINE, minutes=300, step_seconds=1.5, margin=0.9).train.steps_per_epoch == 540
    assert sized.train.learning_rate == COSINE.train.learning_rate and sized.image_size == COSINE.image_size
    tiny = budget.fit_schedule(COSINE, minutes=0.01, step_seconds=2.0, margin=0.9)
    assert (tiny.train.epochs, tiny.train.steps_per_epoch) == (1, 1)


def test_the_settings_a_sized_schedule_overrides_are_the_epoch_lengths():
    settings = ["train.steps_per_epoch=500", "train.epochs=8", " train.steps_per_epoch = 9", "roi.steps_per_epoch=1"]
    assert budget.overridden_settings(settings) == ["train.steps_per_epoch=500", " train.steps_per_epoch = 9"]
    sized = budget.fit_steps(COSINE.with_settings(settings[:2]), 4800)
    assert (sized.train.epochs, sized.train.steps_per_epoch) == (8, 600)  # the epochs given, the length sized


def test_plan_schedule_measures_only_a_new_budgeted_decaying_run(measured, tmp_path):
    run = str(tmp_path / "run")
    assert budget.plan_schedule(COSINE, "DATA", run, None) is COSINE  # no budget
    assert budget.plan_schedule(CONSTANT, "DATA", run, 75) is CONSTANT  # a constant rate needs no sizing
    assert not measured
    sized = budget.plan_schedule(COSINE, "DATA", run, 10, "lgg", True)
    assert measured == [(COSINE, "DATA", "lgg", True)]
    steps = sized.train.epochs * sized.train.steps_per_epoch
    assert steps <= 10 * 60 * budget.SCHEDULE_MARGIN / 2.0 and steps > 250
    with open(tmp_path / "run" / runs.SCHEDULE_FILE) as f:
        assert json.load(f)["steps"] == steps

    # A run folder with a checkpoint resumes with its own config: nothing is measured again.
    sized.to_json(str(tmp_path / "run" / runs.CONFIG_FILE))
    state = tmp_path / "run" / runs.STATE_DIR
    state.mkdir()
    (state / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    (state / "ckpt-1.index").write_bytes(b"")
    assert budget.plan_schedule(COSINE, "DATA", run, 10) is COSINE
    assert len(measured) == 1


def test_plan_schedule_sizes_a_restarted_run_to_the_minutes_it_has_left(measured, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.MARKER_FILE).write_text("{}")  # a run folder of this tool
    (run / runs.SCHEDULE_FILE).write_text('{"steps": 99999}')  # an earlier start's plan: no checkpoint reached
    assert budget.plan_schedule(CONSTANT, "DATA", str(run), 10) is CONSTANT
    assert not (run / runs.SCHEDULE_FILE).exists()  # not reported as this run's plan

    (run / runs.TIME_FILE).write_text('{"train_seconds": 300.0, "step": 40, "budget_seconds": 600.0}')
    sized = budget.plan_schedule(COSINE, "DATA", str(run), 10)
    plan = json.loads((run / runs.SCHEDULE_FILE).read_text())
    assert plan["minutes_left"] == 5.0
    assert sized.train.epochs * sized.train.steps_per_epoch <= 5 * 60 * budget.SCHEDULE_MARGIN / 2.0

    (run / runs.TIME_FILE).write_text('{"train_seconds": 600.0, "step": 80, "budget_seconds": 600.0}')
    assert budget.plan_schedule(COSINE, "DATA", str(run), 10) is COSINE  # spent: nothing to plan or time
    assert len(measured) == 1


def test_measure_step_seconds_times_train_steps_on_slices_spread_over_the_dataset(tmp_path, monkeypatch):
    from conftest import tiny_config, write_lgg_folder

    write_lgg_folder(str(tmp_path))  # 6 slices of 96 px, resized to the config's 64
    decoded = []  # per call: the class names of the config and the reader positions decoded
    load_examples = training.load_examples

    def spy(config, *args, **kwargs):
        decoded.append((config.class_names, kwargs["positions"]))
        return load_examples(config, *args, **kwargs)

    monkeypatch.setattr(training, "load_examples", spy)
    config = tiny_config().replace(class_names=("not", "the", "dataset's"))
    seconds = budget.measure_step_seconds(config, str(tmp_path), steps=2, warmup=1, slices=4)
    assert 0.0 < seconds < 60.0
    # The dataset's classes, as training.train uses; 4 of the 6 slices, spread over both patients, only those decoded.
    assert decoded == [(("tumour",), [0, 2, 3, 5])]


def test_plan_schedule_refuses_a_users_folder_and_touches_nothing(tmp_path):
    (tmp_path / runs.SCHEDULE_FILE).write_text("my own file")
    with pytest.raises(ConfigError, match="not a run folder of this tool"):
        budget.plan_schedule(COSINE, "DATA", str(tmp_path), 10)
    assert (tmp_path / runs.SCHEDULE_FILE).read_text() == "my own file"

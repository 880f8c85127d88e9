"""Run callbacks: checkpoints every N steps, NaN stops the run without saving, per-step and per-epoch CSV."""
import csv
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn_tf import callbacks
from mrcnn_tf.errors import ConfigError


def _model_and_manager(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=model.optimizer),
                                         str(tmp_path / "state"), max_to_keep=2)
    return model, manager


def test_checkpoints_every_n_steps_and_at_epoch_end(tmp_path):
    model, manager = _model_and_manager(tmp_path)
    saver = callbacks.CheckpointSaver(manager, every=3)
    model.fit(np.ones((7, 2)), np.ones((7, 1)), batch_size=1, epochs=1, callbacks=[saver], verbose=0)
    # Steps 3 and 6 by count, step 7 at the epoch end; two are kept.
    assert manager.latest_checkpoint.endswith("ckpt-7")
    assert [c.rsplit("-", 1)[1] for c in manager.checkpoints] == ["6", "7"]


def test_a_non_finite_loss_stops_training_and_saves_nothing_more(tmp_path):
    model, manager = _model_and_manager(tmp_path)
    saver = callbacks.CheckpointSaver(manager, every=1)
    x = np.ones((6, 2), np.float32)
    y = np.array([[1], [1], [np.nan], [1], [1], [1]], np.float32)  # step 3 sees a NaN target
    model.fit(x, y, batch_size=1, epochs=1, callbacks=[saver], verbose=0, shuffle=False)
    assert saver.diverged_at == 3
    assert manager.latest_checkpoint.endswith("ckpt-2")  # the last good one
    restored, _ = _model_and_manager(tmp_path)
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(manager.latest_checkpoint)
    assert all(np.isfinite(w).all() for w in restored.get_weights())


def test_step_logger_writes_each_steps_own_loss(tmp_path):
    model, _ = _model_and_manager(tmp_path)
    path = str(tmp_path / "steps.csv")
    x = np.array([[0, 0], [0, 0], [0, 0]], np.float32)
    y = np.array([[1], [3], [5]], np.float32)  # zero inputs, zero-initialised bias: losses 1, 9, 25 at first
    model.layers[0].set_weights([np.zeros((2, 1)), np.zeros(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # no learning: the step losses stay exact
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[callbacks.StepLogger(path)])
    rows = list(csv.DictReader(open(path)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    np.testing.assert_allclose([float(r["loss"]) for r in rows], [1, 9, 25], rtol=1e-5)
    assert all(math.isfinite(float(r["ms"])) for r in rows)


def test_step_logger_of_a_resumed_run_drops_the_rows_it_will_redo(tmp_path):
    model, _ = _model_and_manager(tmp_path)
    path = str(tmp_path / "steps.csv")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(np.zeros((5, 2)), np.ones((5, 1)), batch_size=1, epochs=1, verbose=0,
              callbacks=[callbacks.StepLogger(path)])  # a run that logged 5 steps, then was killed ...
    model.optimizer.iterations.assign(3)  # ... and whose last checkpoint is from step 3
    model.fit(np.zeros((2, 2)), np.ones((2, 1)), batch_size=1, epochs=1, verbose=0,
              callbacks=[callbacks.StepLogger(path)])
    assert [int(r["step"]) for r in csv.DictReader(open(path))] == [1, 2, 3, 4, 5]
    assert open(path).readline().startswith("step,epoch,ms,learning_rate,loss")


def test_time_budget_stops_training_and_carries_over_to_the_next_sitting(tmp_path):
    model, _ = _model_and_manager(tmp_path)
    path = str(tmp_path / "train_time.json")
    ticks = iter(float(t) for t in range(1000))
    clock = lambda: next(ticks)  # noqa: E731 (every reading is one second later: each step takes 1 s)
    budget = callbacks.TimeBudget(path, minutes=3 / 60, clock=clock)  # 3 seconds: three steps
    model.fit(np.ones((10, 2)), np.ones((10, 1)), batch_size=1, epochs=1, callbacks=[budget], verbose=0)
    assert budget.exhausted_at(3) and int(model.optimizer.iterations.numpy()) == 3
    saved = json.load(open(path))
    assert saved["train_seconds"] == 3.0 and saved["step"] == 3
    later = callbacks.TimeBudget(path, minutes=5 / 60, clock=clock)  # a larger budget later: 2 s left
    model.fit(np.ones((10, 2)), np.ones((10, 1)), batch_size=1, epochs=1, callbacks=[later], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 5


def test_a_run_killed_after_its_budget_ran_out_redoes_the_steps_it_had_not_checkpointed(tmp_path):
    model, _ = _model_and_manager(tmp_path)
    path = str(tmp_path / "train_time.json")
    ticks = iter(float(t) for t in range(1000))
    clock = lambda: next(ticks)  # noqa: E731 (each step takes 1 s)
    budget = callbacks.TimeBudget(path, minutes=3 / 60, clock=clock)
    model.fit(np.ones((10, 2)), np.ones((10, 1)), batch_size=1, epochs=1, callbacks=[budget], verbose=0)
    model.optimizer.iterations.assign(1)  # killed before step 3 was checkpointed: resumed from step 1
    again = callbacks.TimeBudget(path, minutes=3 / 60, clock=clock)
    assert not again.exhausted_at(1) and again.exhausted_at(3)
    model.fit(np.ones((10, 2)), np.ones((10, 1)), batch_size=1, epochs=1, callbacks=[again], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 3  # steps 2 and 3 again, then the budget stops it


def test_a_budget_stop_is_saved_after_the_epoch_end_callbacks_too(tmp_path):
    model, manager = _model_and_manager(tmp_path)
    ticks = iter(float(t) for t in range(1000))
    budget = callbacks.TimeBudget(str(tmp_path / "t.json"), minutes=4 / 60, clock=lambda: next(ticks))
    seen = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(manager.latest_checkpoint))
    model.fit(np.ones((10, 2)), np.ones((10, 1)), batch_size=1, epochs=1, verbose=0,
              callbacks=[budget, probe, callbacks.CheckpointSaver(manager, every=2)])
    # Stopped at step 4 (a multiple of 2): saved after the epoch-end callbacks, once.
    assert seen[0].endswith("ckpt-2") and [c.rsplit("-", 1)[1] for c in manager.checkpoints] == ["2", "4"]


def test_the_last_step_of_an_epoch_is_saved_after_the_epoch_end_callbacks_before_the_saver(tmp_path):
    model, manager = _model_and_manager(tmp_path)
    seen = []  # the latest checkpoint when an epoch-end callback (validation, a log row) runs
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(manager.latest_checkpoint))
    model.fit(np.ones((6, 2)), np.ones((6, 1)), batch_size=1, epochs=1, verbose=0,
              callbacks=[probe, callbacks.CheckpointSaver(manager, every=3)])
    # A kill in the epoch-end callbacks resumes at step 3 and runs them again, not at step 6 without them.
    assert seen[0].endswith("ckpt-3") and manager.latest_checkpoint.endswith("ckpt-6")


def test_history_logger_records_each_epochs_step(tmp_path):
    model, _ = _model_and_manager(tmp_path)
    path = str(tmp_path / "history.csv")
    history = model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=1, epochs=2, verbose=0,
                        callbacks=[callbacks.HistoryLogger(path)])
    assert history.history["step"] == [4, 8]
    assert [(r["epoch"], r["step"]) for r in csv.DictReader(open(path))] == [("0", "4"), ("1", "8")]


def test_history_logger_of_a_resumed_run_drops_the_epochs_it_will_redo(tmp_path):
    model, _ = _model_and_manager(tmp_path)
    path = str(tmp_path / "history.csv")
    model.fit(np.ones((2, 2)), np.ones((2, 1)), batch_size=1, epochs=3, verbose=0,
              callbacks=[callbacks.HistoryLogger(path)])  # rows at steps 2, 4, 6, then killed ...
    model.optimizer.iterations.assign(3)  # ... with its last checkpoint at step 3, in the second epoch
    model.fit(np.ones((1, 2)), np.ones((1, 1)), batch_size=1, initial_epoch=1, epochs=2, verbose=0,
              callbacks=[callbacks.HistoryLogger(path)])  # finishes the second epoch again
    assert [(r["epoch"], r["step"]) for r in csv.DictReader(open(path))] == [("0", "2"), ("1", "4")]
    text = open(path, newline="").read()
    assert text.count("\r\n") == text.count("\n") == 3  # Keras' line endings kept through the rewrite


def test_a_time_budget_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="positive"):
        callbacks.TimeBudget(str(tmp_path / "t.json"), minutes=0)


def test_a_run_logs_everything_before_its_checkpoint(tmp_path):
    from conftest import tiny_config
    from mrcnn_tf.training import run_callbacks

    saver = callbacks.CheckpointSaver(None, every=1)
    order = [type(c) for c in run_callbacks(saver, None, [], str(tmp_path), tiny_config())]
    assert order == [callbacks.ValidationMetrics, callbacks.StepLogger, callbacks.HistoryLogger,
                     callbacks.EpochTensorBoard, callbacks.CheckpointSaver]

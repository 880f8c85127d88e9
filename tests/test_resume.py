"""A training run killed with SIGKILL resumes from its last checkpoint when the same command runs again."""
import csv
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf
from conftest import tiny_config, write_lgg_folder

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, STEPS, EVERY = 2, 12, 4


def _checkpoint_step(run):
    latest = tf.train.latest_checkpoint(os.path.join(run, "state"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    data, run, config_path = str(tmp_path / "data"), str(tmp_path / "run"), str(tmp_path / "tiny.json")
    write_lgg_folder(data)
    config = tiny_config().replace(train={"epochs": EPOCHS, "steps_per_epoch": STEPS, "checkpoint_every": EVERY,
                                          "val_every": 0, "warmup_steps": 5})
    config.to_json(config_path)
    command = [sys.executable, "train.py", "--data", data, "--out", run, "--config", config_path,
               "--predictions", "0", "--no-val-report", "--no-export"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    first = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # two test workers and this child share 2 cores
    while _checkpoint_step(run) < 2 * EVERY and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _checkpoint_step(run)
    assert first.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 2 * EVERY <= killed_at < EPOCHS * STEPS
    assert not os.path.exists(os.path.join(run, "model.weights.h5"))

    second = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"from step {killed_at}" in second.stderr
    assert os.path.isfile(os.path.join(run, "model.weights.h5"))
    assert _checkpoint_step(run) == EPOCHS * STEPS

    steps = [int(row["step"]) for row in csv.DictReader(open(os.path.join(run, "steps.csv")))]
    assert steps == list(range(1, EPOCHS * STEPS + 1))  # one row a step: rows logged after the checkpoint are redone
    epochs = [int(row["epoch"]) for row in csv.DictReader(open(os.path.join(run, "history.csv")))]
    assert epochs == list(range(EPOCHS))  # one row an epoch (Keras counts from 0), none lost or doubled


def _rows(path):
    return len(open(path).readlines()) - 1 if os.path.isfile(path) else 0  # rows after the header


def test_sigterm_stops_with_a_checkpoint_at_that_step_and_a_second_process_is_refused(tmp_path):
    data, run, config_path = str(tmp_path / "data"), str(tmp_path / "run"), str(tmp_path / "tiny.json")
    write_lgg_folder(data)
    total = 60
    config = tiny_config().replace(train={"epochs": 1, "steps_per_epoch": total, "checkpoint_every": 1000,
                                          "val_every": 0, "warmup_steps": 5})
    config.to_json(config_path)
    command = [sys.executable, "train.py", "--data", data, "--out", run, "--config", config_path,
               "--predictions", "0", "--no-val-report", "--no-export"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    steps_file = os.path.join(run, "steps.csv")

    first = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 600
    while first.poll() is None and time.time() < deadline and _rows(steps_file) < 3:
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    sent = time.time()
    _, stderr = first.communicate(timeout=120)
    stopped_in = time.time() - sent
    assert first.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stopped_in < 15  # a step or two on two busy cores
    stopped_at = _checkpoint_step(run)
    assert 3 <= stopped_at < total  # no checkpoint was due (every 1000 steps): the signal's own
    assert f"SIGTERM: training stopped at step {stopped_at} with a checkpoint" in stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    assert [int(row["step"]) for row in csv.DictReader(open(steps_file))][-1] == stopped_at

    resumed = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    while resumed.poll() is None and time.time() < deadline and _rows(steps_file) <= stopped_at:
        time.sleep(0.05)
    second = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    _, resumed_stderr = resumed.communicate(timeout=600)
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"another process (id {resumed.pid}) is training in this run folder" in second.stderr
    assert resumed.returncode == 0, resumed_stderr[-3000:]
    assert f"from step {stopped_at}" in resumed_stderr
    steps = [int(row["step"]) for row in csv.DictReader(open(steps_file))]
    assert steps == list(range(1, total + 1))

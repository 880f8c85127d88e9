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

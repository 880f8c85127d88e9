"""mrcnn_tf/runs.py: the run folder read back (config, final and best weights, precision), its errors, and which
config a run resumes with. Run folders here hold a tiny untrained model's config and weights, as training writes
them (tests/cli/test_train.py checks a real run's folder)."""
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from mrcnn_tf import runs
from mrcnn_tf.errors import ConfigError
from mrcnn_tf.model import build_model


def _shifted(weights, step):
    """``weights`` (a list of arrays) with ``step`` added to each float array: distinct values."""
    return [w + step if np.issubdtype(w.dtype, np.floating) else w for w in weights]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """``(run_dir, final weights, best weights)``: a run folder with distinct final and best weights files."""
    run_dir = str(tmp_path_factory.mktemp("run"))
    model = build_model(tiny_config())
    runs.write_config(run_dir, model.config)
    final = model.get_weights()
    model.save_weights(runs.path(run_dir, runs.WEIGHTS_FILE))
    best = _shifted(final, 1.0)
    model.set_weights(best)
    model.save_weights(runs.path(run_dir, runs.BEST_WEIGHTS_FILE))
    return run_dir, final, best


@pytest.fixture
def float32_policy():
    yield
    runs.set_precision(False)


def _assert_weights(model, expected):
    got = model.get_weights()
    assert len(got) == len(expected)
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("which", ["final", "best"])
def test_load_run_gives_the_model_with_the_chosen_weights(saved_run, which):
    run_dir, final, best = saved_run
    model = runs.load_run(run_dir, which)
    # No pre-trained download, and the norm the run trained with (tiny_config's weights "none" mean group_norm).
    assert model.config == tiny_config(backbone={"norm": "group_norm"})
    _assert_weights(model, final if which == "final" else best)
    out = model(tf.zeros([1, 64, 64, 3], tf.uint8))  # a working model, at the config's sizes
    assert out["boxes"].shape == (1, 10, 4)


def test_load_run_never_downloads_pretrained_weights_and_keeps_the_norm(tmp_path):
    # A run trained from ImageNet weights: the run's own weights win, with the norm that it trained with.
    run_dir = str(tmp_path)
    config = tiny_config(backbone={"weights": "imagenet"})
    model = build_model(config.replace(backbone={"weights": "none", "norm": "frozen_bn"}))
    runs.write_config(run_dir, config)
    model.save_weights(runs.path(run_dir, runs.WEIGHTS_FILE))
    loaded = runs.load_run(run_dir)
    assert loaded.config.backbone.weights == "none" and loaded.config.backbone.norm == "frozen_bn"
    assert isinstance(loaded.backbone.get_layer("conv1_bn"), keras.layers.BatchNormalization)
    _assert_weights(loaded, model.get_weights())


def test_load_run_sets_the_precision_the_run_trained_with(tmp_path, saved_run, float32_policy):
    run_dir = str(tmp_path)
    runs.write_config(run_dir, tiny_config(train={"mixed_precision": True}))
    shutil.copy(runs.path(saved_run[0], runs.WEIGHTS_FILE), runs.path(run_dir, runs.WEIGHTS_FILE))
    model = runs.load_run(run_dir)
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert model.backbone.get_layer("conv1_conv").compute_dtype == "float16"
    _assert_weights(model, saved_run[1])  # float32 variables under either policy


def test_weights_path_names_what_is_missing(tmp_path, saved_run):
    run_dir = saved_run[0]
    assert runs.weights_path(run_dir) == os.path.join(run_dir, "model.weights.h5")
    assert runs.weights_path(run_dir, "best") == os.path.join(run_dir, "best.weights.h5")
    assert runs.weights_path(run_dir, "last") == runs.weights_path(run_dir)  # an older name for final
    with pytest.raises(ConfigError, match="weights must be 'final', 'last', 'best' or a .weights.h5 file, got 'x'"):
        runs.weights_path(run_dir, "x")
    elsewhere = runs.weights_path(run_dir, "best")
    assert runs.weights_path(str(tmp_path), elsewhere) == elsewhere  # a file's path, wherever it is
    with pytest.raises(ConfigError, match="missing.weights.h5: weights file not found"):
        runs.weights_path(run_dir, str(tmp_path / "missing.weights.h5"))
    runs.write_config(str(tmp_path), tiny_config())  # a run stopped before its first validation or its end
    for which, name in (("final", "model.weights.h5"), ("best", "best.weights.h5")):
        with pytest.raises(ConfigError) as error:
            runs.load_run(str(tmp_path), which)
        message = str(error.value)
        assert os.path.join(str(tmp_path), name) in message and f"the run has no {which} weights" in message


def test_read_config_of_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder \\(no config.json\\)") as error:
        runs.read_config(str(tmp_path))
    assert str(tmp_path) in str(error.value)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ConfigError, match="not a readable configuration") as error:
        runs.read_config(str(tmp_path))
    assert str(tmp_path / "config.json") in str(error.value)


def test_write_then_read_config_round_trips(tmp_path):
    config = tiny_config(train={"epochs": 3}, runtime={"xla_conv": None})
    runs.write_config(str(tmp_path), config)
    assert os.listdir(tmp_path) == [runs.CONFIG_FILE]
    assert runs.read_config(str(tmp_path)) == config


def _checkpoint(run_dir):
    """A resumable checkpoint in ``run_dir/state``, as training writes (a tf.train.Checkpoint)."""
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(3)), runs.path(run_dir, runs.STATE_DIR),
                                         max_to_keep=1)
    return manager.save()


def test_resumable_config_is_the_folders_only_with_a_checkpoint(tmp_path):
    run_dir, given, recorded = str(tmp_path / "run"), tiny_config(), tiny_config(train={"epochs": 7})
    assert runs.resumable_config(run_dir, given) == (given, False)  # no folder yet: a new run
    os.makedirs(run_dir)
    runs.write_config(run_dir, recorded)
    assert not runs.has_checkpoint(run_dir)
    assert runs.resumable_config(run_dir, given) == (given, False)  # stopped before its first checkpoint
    _checkpoint(run_dir)
    assert runs.has_checkpoint(run_dir)
    config, resuming = runs.resumable_config(run_dir, given)
    assert resuming and config == recorded  # the same command resumes the same run


def test_a_checkpoint_without_a_config_starts_a_new_run(tmp_path):
    _checkpoint(str(tmp_path))
    assert runs.resumable_config(str(tmp_path), tiny_config()) == (tiny_config(), False)


def test_saved_weights_leave_the_optimizer_out_and_load_back(tmp_path):
    from mrcnn_tf import training

    model = training.compile_model(tiny_config())  # a compiled model: its optimizer holds momentum for each weight
    ours, keras_own = str(tmp_path / "ours.weights.h5"), str(tmp_path / "keras.weights.h5")
    runs.save_weights(model, ours)
    model.save_weights(keras_own)
    weights = 4 * sum(int(np.prod(v.shape)) for v in model.weights)
    assert os.path.getsize(ours) <= 1.05 * weights < 1.5 * weights <= os.path.getsize(keras_own)
    assert sorted(os.listdir(tmp_path)) == ["keras.weights.h5", "ours.weights.h5"]  # no partial file left
    fresh = build_model(tiny_config())
    fresh.load_weights(ours)
    for got, want in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


# --- the run folder as --out: only new, empty or this tool's; locked for the life of a run -----------------------


def test_out_may_be_absent_empty_or_a_run_of_this_tool(tmp_path):
    runs.check_out_dir(str(tmp_path / "new"))
    runs.check_out_dir(str(tmp_path))  # empty
    (tmp_path / "config.json").write_text("{}")  # a user's own file
    with pytest.raises(ConfigError, match="holds files and is not a run folder of this tool"):
        runs.check_out_dir(str(tmp_path))
    (tmp_path / runs.MARKER_FILE).write_text("{}")
    runs.check_out_dir(str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--out is a file"):
        runs.check_out_dir(str(tmp_path / "file"))


def test_a_failed_start_leaves_the_folder_as_it_found_it(tmp_path):
    new = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with runs.RunLock(str(new)):
            assert (new / runs.MARKER_FILE).is_file() and (new / runs.LOCK_FILE).is_file()
            raise RuntimeError("the data was bad")
    assert not new.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError):
        with runs.RunLock(str(empty)):
            raise RuntimeError("the data was bad")
    assert empty.is_dir() and os.listdir(empty) == []
    with runs.RunLock(str(empty)) as lock:  # a start that commits keeps what it made
        lock.commit()
    assert sorted(os.listdir(empty)) == [runs.LOCK_FILE, runs.MARKER_FILE]


HOLD = """
import sys, time
from mrcnn_tf import runs
with runs.RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_ones_lock_does_not_block(tmp_path):
    import signal
    import subprocess
    import sys

    run = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, run, "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"another process \\(id {holder.pid}\\) is training in this run"):
            with runs.RunLock(run):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "run" / runs.LOCK_FILE).read_text().strip() == str(holder.pid)  # a stale lock file
    with runs.RunLock(run) as lock:  # the kernel released the killed process's lock
        lock.commit()
    assert (tmp_path / "run" / runs.LOCK_FILE).read_text().strip() == str(os.getpid())

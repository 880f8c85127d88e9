"""mrcnn_tf.training: what a run keeps in its folder (checkpoints, the export of its final weights)."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ellipse_batch, tiny_config, write_lgg_folder

from mrcnn_tf import callbacks, runs, training
from mrcnn_tf.errors import CheckpointFailed, ConfigError, DataError


@pytest.mark.parametrize("keep", [1, 2])
def test_the_run_keeps_its_last_checkpoints_only(tmp_path, keep):
    model = training.compile_model(tiny_config(train={"keep_checkpoints": keep}))
    manager = training.checkpoint_manager(model, str(tmp_path))
    for step in (50, 100, 150):
        manager.save(checkpoint_number=step)
    kept = [os.path.basename(path) for path in manager.checkpoints]
    assert kept == [f"ckpt-{step}" for step in (50, 100, 150)[-keep:]]
    assert tf.train.latest_checkpoint(runs.path(str(tmp_path), runs.STATE_DIR)).endswith("ckpt-150")
    index_files = [name for name in os.listdir(runs.path(str(tmp_path), runs.STATE_DIR)) if name.endswith(".index")]
    assert len(index_files) == keep


def test_a_finished_run_run_again_exports_no_new_version(tmp_path):
    model = training.compile_model(tiny_config())
    first = training.export_final(model, str(tmp_path))
    assert first.endswith(os.path.join(runs.EXPORT_DIR, "1"))
    assert training.export_final(model, str(tmp_path)) == first  # the same step: the same export
    model.optimizer.iterations.assign(7)  # trained further
    assert training.export_final(model, str(tmp_path)).endswith(os.path.join(runs.EXPORT_DIR, "2"))


def test_adamw_follows_the_schedule_trains_and_resumes_with_its_moments(tmp_path):
    config = tiny_config(train={"optimizer": "adamw", "learning_rate": 1e-3, "warmup_steps": 4, "epochs": 1,
                                "steps_per_epoch": 8, "lr_schedule": "cosine", "weight_decay": 0.05})
    model = training.compile_model(config)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert (optimizer.weight_decay, optimizer.global_clipnorm) == (0.05, config.train.clipnorm)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3 / 4)  # the warm-up's first step
    _, _, batch = ellipse_batch(config)
    before = [w.copy() for w in model.get_weights()]
    for _ in range(2):
        model.train_on_batch(batch)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(model.get_weights(), before))
    training.checkpoint_manager(model, str(tmp_path)).save(checkpoint_number=2)

    resumed = training.compile_model(config)
    manager = training.checkpoint_manager(resumed, str(tmp_path))
    manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    assert int(resumed.optimizer.iterations) == 2
    def adam_moments(optimizer):
        return [v.numpy() for v in optimizer.variables if "momentum" in v.path or "velocity" in v.path]

    moments, restored = adam_moments(optimizer), adam_moments(resumed.optimizer)
    assert moments and len(moments) == len(restored)
    assert any(np.abs(m).max() > 0 for m in moments)
    for want, got in zip(moments, restored):
        np.testing.assert_array_equal(got, want)


GIVEN = {"--epochs": ("train", "epochs", 60), "--lr": ("train", "learning_rate", 0.001)}


def test_resume_extends_epochs_and_names_every_other_flag_that_differs():
    run_config = tiny_config(train={"epochs": 30, "learning_rate": 0.001})
    assert training.resumed_config("RUN", run_config, GIVEN).train.epochs == 60  # more epochs: applied
    assert training.resumed_config("RUN", run_config, {}) == run_config
    given = {"--epochs": ("train", "epochs", 2), "--lr": ("train", "learning_rate", 0.5),
             "--image-size": (None, "image_size", 128), "--split-seed": ("train", "split_seed", 7)}
    with pytest.raises(ConfigError) as error:
        training.resumed_config("RUN", run_config, given)
    message = str(error.value)
    for part in ("--epochs: the run has 30, given 2", "--lr: the run has 0.001, given 0.5",
                 "--image-size: the run has 64, given 128", "--split-seed: the run has 0, given 7",
                 "start a new run in another --out"):
        assert part in message


def test_training_into_a_users_folder_touches_nothing(tmp_path):
    data, out = str(tmp_path / "data"), tmp_path / "mine"
    write_lgg_folder(data)
    out.mkdir()
    files = {"config.json": "my own settings", "splits.json": "{}", "history.csv": "a,b\n1,2\n"}
    for name, text in files.items():
        (out / name).write_text(text)
    with pytest.raises(ConfigError, match="not a run folder of this tool"):
        training.train(tiny_config(), data, str(out))
    assert {name: (out / name).read_text() for name in os.listdir(out)} == files


def test_a_start_that_fails_on_its_data_leaves_no_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DataError):
        training.train(tiny_config(), str(data), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


class FailingCheckpoint:
    """A checkpoint whose write begins its files, then fails as a full disk does."""

    def __init__(self, real):
        self.real = real

    def _write(self, file_prefix, options=None):
        with open(file_prefix + ".data-00000-of-00001", "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_says_so(tmp_path):
    model = training.compile_model(tiny_config())
    manager = training.checkpoint_manager(model, str(tmp_path))
    callbacks.save_checkpoint(manager, 50)
    manager._checkpoint = FailingCheckpoint(manager._checkpoint)
    with pytest.raises(CheckpointFailed, match="No space left on device.*the previous checkpoint is kept .*ckpt-50"):
        callbacks.save_checkpoint(manager, 100)
    state = runs.path(str(tmp_path), runs.STATE_DIR)
    assert tf.train.latest_checkpoint(state).endswith("ckpt-50")
    assert not [name for name in os.listdir(state) if name.startswith("ckpt-100")]  # the partial files are gone

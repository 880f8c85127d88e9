"""The run folder: what a training run writes, under which names, and how a trained model is read back.

Training (``mrcnn_tf.training``) writes it; evaluation, export and predict read it through :func:`load_run`, so
none of them needs the trainer. Layout::

    RUN/.mrcnn_run                   the marker: this tool made the folder (written first); see check_out_dir
    RUN/.lock                        held (flock) by the process training in the folder; see RunLock
    RUN/config.json                  the configuration trained with (Config.to_json)
    RUN/splits.json                  the patient-level train / val / test split (training uses train only)
    RUN/state/                       resumable checkpoints (model, optimizer, step); see ``callbacks``
    RUN/history.csv                  the losses and validation figures of every epoch (and its last step)
    RUN/train_time.json              wall-clock seconds of training so far, with a time budget (``minutes``)
    RUN/schedule.json                the schedule sized to the time budget, when one was (``budget``)
    RUN/steps.csv                    the losses, learning rate and milliseconds of every step
    RUN/tensorboard/                 TensorBoard logs: losses, learning rate, validation figures and overlays
    RUN/best.weights.h5, best.json   the weights with the best validation mask AP50 so far
    RUN/model.weights.h5             the final weights
    RUN/export/                      the final model as a SavedModel for serving (``mrcnn_tf.export``)
    RUN/predictions/                 overlays and predictions.json for a few training slices
    RUN/val_report/                  the evaluation report of the validation split (as evaluate.py writes)
"""
import errno
import fcntl
import json
import os
import shutil

import keras
import tensorflow as tf
from keras.src.saving import saving_lib  # save_weights_only(objects_to_skip=...): Keras' public save_weights
                                         # also writes a compiled model's optimizer variables

from mrcnn_tf.config import Config
from mrcnn_tf.data.splits import SPLITS_FILE  # noqa: F401  (one of the run folder's names)
from mrcnn_tf.errors import ConfigError
from mrcnn_tf.model import build_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
BEST_WEIGHTS_FILE = "best.weights.h5"
BEST_FILE = "best.json"  # which step the best weights are from, and their validation figures
TIME_FILE = "train_time.json"
SCHEDULE_FILE = "schedule.json"
HISTORY_FILE = "history.csv"
STEPS_FILE = "steps.csv"
STATE_DIR = "state"
TENSORBOARD_DIR = "tensorboard"
EXPORT_DIR = "export"
PREDICTIONS_DIR = "predictions"
VAL_REPORT_DIR = "val_report"
MARKER_FILE = ".mrcnn_run"
LOCK_FILE = ".lock"
WEIGHTS = {"final": WEIGHTS_FILE, "last": WEIGHTS_FILE, "best": BEST_WEIGHTS_FILE}  # "last": an older name


def path(run_dir, name):
    """The path of the run folder's file or folder ``name`` (one of this module's names)."""
    return os.path.join(run_dir, name)


def read_config(run_dir):
    """The :class:`~mrcnn_tf.config.Config` the run trained with; ConfigError naming the file when it is missing
    or unreadable."""
    config_path = path(run_dir, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
    return Config.from_json(config_path)


def write_config(run_dir, config):
    """Write ``config`` as the run's ``config.json``."""
    config.to_json(path(run_dir, CONFIG_FILE))


def has_checkpoint(run_dir):
    """Whether the run folder holds a resumable checkpoint."""
    return tf.train.latest_checkpoint(path(run_dir, STATE_DIR)) is not None


def resumable_config(run_dir, config):
    """The config of the run: the run folder's own when it has a checkpoint to resume (so the same command
    resumes the same run), ``config`` otherwise. Returns ``(config, resuming)``."""
    if os.path.isfile(path(run_dir, CONFIG_FILE)) and has_checkpoint(run_dir):
        return read_config(run_dir), True
    return config, False


def weights_path(run_dir, weights="final"):
    """The path of the run's ``"final"`` (also ``"last"``) or ``"best"`` weights, or ``weights`` itself when it
    is a ``.weights.h5`` file's path; ConfigError when absent or another name."""
    if weights.endswith(".weights.h5"):
        if not os.path.isfile(weights):
            raise ConfigError(f"{weights}: weights file not found")
        return weights
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be 'final', 'last', 'best' or a .weights.h5 file, got {weights!r}")
    weights_file = path(run_dir, WEIGHTS[weights])
    if not os.path.isfile(weights_file):
        raise ConfigError(f"{weights_file} does not exist: the run has no {weights} weights (has it finished?)")
    return weights_file


def set_precision(mixed_precision):
    """``mixed_float16`` for GPU users; float32 otherwise (mixed precision is 4-10x slower on a CPU)."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def save_weights(model, weights_file):
    """Write ``model``'s weights, without its optimizer's state (half the file for SGD with momentum: resuming
    reads ``state/``, not these files), whole or not at all (written beside, then renamed)."""
    partial = weights_file[: -len(".weights.h5")] + ".partial.weights.h5"
    objects_to_skip = [model.optimizer] if getattr(model, "optimizer", None) is not None else None
    saving_lib.save_weights_only(model, partial, objects_to_skip=objects_to_skip)
    os.replace(partial, weights_file)


def load_run(run_dir, weights="final", inference=None):
    """The :class:`~mrcnn_tf.model.MaskRCNN` of a run folder with its ``"final"`` weights, its ``"best"`` (by
    validation mask AP50) or a weights file (:func:`weights_path`), at the precision it trained with; no
    pre-trained download: the run's weights win. ``inference``: a dict of ``config.inference`` fields to change
    (thresholds, ``max_detections``)."""
    weights_file = weights_path(run_dir, weights)
    config = read_config(run_dir)
    config = config.replace(backbone={"weights": "none", "norm": config.backbone.resolved_norm},
                            inference=dict(inference or {}))
    set_precision(config.train.mixed_precision)
    model = build_model(config)
    model.load_weights(weights_file)
    return model


def is_run_dir(run_dir):
    """Whether ``run_dir`` is a run folder this tool made: its marker, or (folders from before the marker) a
    ``config.json`` with a checkpoint in ``state/``."""
    if os.path.isfile(path(run_dir, MARKER_FILE)):
        return True
    return os.path.isfile(path(run_dir, CONFIG_FILE)) and has_checkpoint(run_dir)


def check_out_dir(run_dir):
    """ConfigError unless ``run_dir`` may be a run's ``--out``: absent, empty, or a run folder this tool made.
    Reads only: nothing of a user's folder is touched before this passes."""
    if not os.path.exists(run_dir) or is_run_dir(run_dir):
        return
    if not os.path.isdir(run_dir):
        raise ConfigError(f"{run_dir}: --out is a file; give a new or empty folder, or a run folder to resume")
    if os.listdir(run_dir):
        raise ConfigError(f"{run_dir}: --out holds files and is not a run folder of this tool (no {MARKER_FILE}); "
                          "give a new or empty folder, or a run folder to resume")


class RunLock:
    """The run folder, held for the life of a run: ``with RunLock(run_dir):``.

    On entry: :func:`check_out_dir`, the folder and its marker made where missing, and an exclusive lock
    (``flock``) on ``RUN/.lock`` holding this process's id; a second process refuses at once (ConfigError naming
    the holder's id). The kernel releases the lock of a killed process, so a stale lock file never blocks. On an
    exception before :meth:`commit`, what the entry made (marker, lock file, the folder itself) is removed: a
    failed start leaves the folder as it found it.
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.made = []  # paths this start created, newest last
        self.committed = False
        self.handle = None

    def __enter__(self):
        check_out_dir(self.run_dir)
        if not os.path.isdir(self.run_dir):
            os.makedirs(self.run_dir)
            self.made.append(self.run_dir)
        lock_path = path(self.run_dir, LOCK_FILE)
        if not os.path.exists(lock_path):
            self.made.append(lock_path)
        self.handle = open(lock_path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise ConfigError(f"{self.run_dir}: another process (id {holder}) is training in this run folder; wait "
                              "for it to end or stop it") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        if not os.path.isfile(path(self.run_dir, MARKER_FILE)):
            with open(path(self.run_dir, MARKER_FILE), "w") as f:
                json.dump({"tool": "mrcnn_tf", "what": "a training run folder"}, f)
            self.made.append(path(self.run_dir, MARKER_FILE))
        return self

    def commit(self):
        """The start succeeded (its configuration is written): an exception from now on keeps the folder."""
        self.committed = True

    def __exit__(self, kind, error, trace):
        self.handle.close()  # releases the lock
        if kind is not None and not self.committed:
            for made in reversed(self.made):
                if os.path.isdir(made):
                    shutil.rmtree(made, ignore_errors=True)
                elif os.path.exists(made):
                    os.remove(made)
        return False

"""The run folder: what a training run writes, under which names, and how a trained model is read back.

Training (``mrcnn_tf.training``) writes it; evaluation, export and predict read it through :func:`load_run`, so
none of them needs the trainer. Layout::

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
import os

import keras
import tensorflow as tf

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
WEIGHTS = {"final": WEIGHTS_FILE, "best": BEST_WEIGHTS_FILE}


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
    """The path of the run's ``"final"`` or ``"best"`` weights (ConfigError when absent or another name)."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be 'final' or 'best', got {weights!r}")
    weights_file = path(run_dir, WEIGHTS[weights])
    if not os.path.isfile(weights_file):
        raise ConfigError(f"{weights_file} does not exist: the run has no {weights} weights (has it finished?)")
    return weights_file


def set_precision(mixed_precision):
    """``mixed_float16`` for GPU users; float32 otherwise (mixed precision is 4-10x slower on a CPU)."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def load_run(run_dir, weights="final"):
    """The :class:`~mrcnn_tf.model.MaskRCNN` of a run folder with its ``"final"`` weights or its ``"best"`` (by
    validation mask AP50), at the precision it trained with; no pre-trained download: the run's weights win."""
    weights_file = weights_path(run_dir, weights)
    config = read_config(run_dir)
    config = config.replace(backbone={"weights": "none", "norm": config.backbone.resolved_norm})
    set_precision(config.train.mixed_precision)
    model = build_model(config)
    model.load_weights(weights_file)
    return model

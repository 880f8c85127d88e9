"""A training run: data in, a run folder out (config, checkpoints, history, final weights, sample predictions).

Run folder layout::

    RUN/config.json                  the configuration trained with (Config.to_json)
    RUN/splits.json                  the patient-level train / val / test split (training uses train only)
    RUN/state/                       resumable checkpoints (model, optimizer, step); see ``callbacks``
    RUN/history.csv                  the losses and validation figures of every epoch (and its last step)
    RUN/train_time.json              wall-clock seconds of training so far, with a time budget (``minutes``)
    RUN/steps.csv                    the losses, learning rate and milliseconds of every step
    RUN/tensorboard/                 TensorBoard logs: losses, learning rate, validation figures and overlays
    RUN/best.weights.h5, best.json   the weights with the best validation mask AP50 so far
    RUN/model.weights.h5             the final weights
    RUN/export/                      the final model as a SavedModel for serving (``mrcnn_tf.export``)
    RUN/predictions/                 overlays and predictions.json for a few training slices
    RUN/val_report/                  the evaluation report of the validation split (as evaluate.py writes)
"""
import functools
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from mrcnn_tf import callbacks, inference, visualize
from mrcnn_tf.config import Config
from mrcnn_tf.data import pipeline, readers, splits
from mrcnn_tf.errors import ConfigError, TrainingDiverged
from mrcnn_tf.model import build_model
from mrcnn_tf.optimizer import FusedSGD
from mrcnn_tf.schedules import WarmupSchedule

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
TIME_FILE = "train_time.json"
HISTORY_FILE = "history.csv"
STEPS_FILE = "steps.csv"
STATE_DIR = "state"
EXPORT_DIR = "export"


def set_precision(mixed_precision):
    """``mixed_float16`` for GPU users; float32 otherwise (mixed precision is 4-10x slower on a CPU)."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def make_optimizer(train):
    """SGD with momentum, decoupled weight decay, global gradient-norm clipping and the warm-up schedule, fused
    into one pass over each variable (:class:`~mrcnn_tf.optimizer.FusedSGD`)."""
    total_steps = train.epochs * train.steps_per_epoch
    schedule = WarmupSchedule(train.learning_rate, train.warmup_steps, total_steps, train.lr_schedule)
    return FusedSGD(
        learning_rate=schedule,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        global_clipnorm=train.clipnorm,
    )


def make_strategy(name):
    """The tf.distribute strategy: ``default`` (one device), ``mirrored`` (all local GPUs, or CPUs if none),
    ``multiworker`` (several machines, configured by ``TF_CONFIG``)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"strategy must be default, mirrored or multiworker, got {name!r}")


def compile_model(config, strategy=None):
    """A built and compiled :class:`MaskRCNN` for ``config``, its variables placed by ``strategy``."""
    set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.train.seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(config)
        model.compile(optimizer=make_optimizer(config.train), jit_compile=config.train.jit_compile)
        model.optimizer.build(model.trainable_variables)
    return model


def load_examples(config, reader, max_slices=None, verbose=True, skip_bad=False, positions=None):
    """The items of ``reader`` (those at ``positions``, else the first ``max_slices`` if given) that decode, and
    their decoded arrays."""
    items = reader.items[:max_slices] if positions is None else [reader.items[i] for i in positions]
    load = functools.partial(readers.load_example, reader, image_size=config.image_size,
                             max_instances=config.max_instances)
    return pipeline.decode_all(items, load, verbose=verbose, skip_bad=skip_bad)


def train(config, data_root, out_dir, max_slices=None, num_predictions=8, verbose=1, validation_report=True,
          data_format="auto", skip_bad=False, export=True, minutes=None):
    """Train on the dataset at ``data_root`` (any ``data.readers`` format) into the run folder ``out_dir``.

    A run folder that already holds a checkpoint is resumed: its own ``config.json`` and ``splits.json`` are
    used and training continues from the last checkpoint's step. The config's ``class_names`` become the
    dataset's. ``minutes`` bounds the wall-clock time of the train steps over all sittings of the run
    (:class:`callbacks.TimeBudget`); training ends at the configured epochs or there, whichever comes first.
    Returns the model; raises :class:`TrainingDiverged` when the loss stops being finite.
    """
    reader = readers.open_dataset(data_root, data_format)
    config, resuming = run_config(out_dir, config.replace(class_names=tuple(reader.class_names)))
    all_items, arrays = load_examples(config, reader, max_slices, verbose=bool(verbose), skip_bad=skip_bad)
    os.makedirs(out_dir, exist_ok=True)
    config.to_json(os.path.join(out_dir, CONFIG_FILE))
    split_map = prepare_splits(out_dir, all_items, arrays, config.train)
    position = {item: i for i, item in enumerate(all_items)}
    items = splits.select(all_items, split_map, "train")
    val_items = _validation_items(all_items, split_map, config.train.val_max_images)
    val_arrays = subset(arrays, [position[item] for item in val_items]) if val_items else None
    arrays = subset(arrays, [position[item] for item in items])

    model = compile_model(config, make_strategy(config.train.strategy))
    manager = checkpoint_manager(model, out_dir)
    step = restore_latest(model, manager)
    if resuming:
        print(f"resuming {out_dir} from step {step} (checkpoint {manager.latest_checkpoint})", file=sys.stderr)
    saver = callbacks.CheckpointSaver(manager, config.train.checkpoint_every)
    budget = callbacks.TimeBudget(os.path.join(out_dir, TIME_FILE), minutes) if minutes is not None else None
    # The budget first: its clock then times the step alone, not the other callbacks' work.
    callback_list = ([budget] if budget else []) + run_callbacks(saver, reader, val_items, out_dir, config)
    fit_epochs(model, config, arrays, val_arrays, step, callback_list, saver, verbose, budget)
    if saver.diverged_at is not None:
        raise TrainingDiverged(f"the loss became NaN or infinite at step {saver.diverged_at}; training stopped and "
                               f"the last good checkpoint is {manager.latest_checkpoint}")
    model.save_weights(os.path.join(out_dir, WEIGHTS_FILE))
    if num_predictions:
        write_predictions(model, items, arrays, os.path.join(out_dir, "predictions"), num_predictions)
    if export:
        from mrcnn_tf import export as export_lib  # export imports this module

        export_lib.export_model(model, os.path.join(out_dir, EXPORT_DIR))
    if validation_report:
        write_validation_report(model, reader, all_items, split_map, out_dir, verbose)
    return model


def run_config(out_dir, config):
    """The config of the run: the run folder's own when it has a checkpoint to resume (so the same command
    resumes the same run), ``config`` otherwise. Returns ``(config, resuming)``."""
    path = os.path.join(out_dir, CONFIG_FILE)
    if os.path.isfile(path) and tf.train.latest_checkpoint(os.path.join(out_dir, STATE_DIR)):
        return Config.from_json(path), True
    return config, False


def checkpoint_manager(model, out_dir):
    """Resumable state of the run: model and optimizer (with its step counter) in ``RUN/state/``."""
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return tf.train.CheckpointManager(checkpoint, os.path.join(out_dir, STATE_DIR), max_to_keep=2)


def restore_latest(model, manager):
    """Restore the latest checkpoint if there is one; returns the step it was taken at (0 when none)."""
    if manager.latest_checkpoint:
        manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return callbacks.global_step(model)


def run_callbacks(saver, reader, val_items, out_dir, config):
    """The callbacks of a run, in the order they must run: validation figures before the loggers, and every log
    (a step's ``steps.csv`` row, an epoch's ``history.csv`` row and TensorBoard scalars) before the checkpoint it
    belongs to, last (a run killed between the two would otherwise resume after a step or epoch that was never
    logged; CSV rows written after the checkpoint are dropped and written again on resume)."""
    writer = tf.summary.create_file_writer(os.path.join(out_dir, "tensorboard"))
    return [
        callbacks.ValidationMetrics(reader, val_items, out_dir, config.train.val_every, writer),
        callbacks.StepLogger(os.path.join(out_dir, STEPS_FILE), writer),
        callbacks.HistoryLogger(os.path.join(out_dir, HISTORY_FILE)),
        callbacks.EpochTensorBoard(writer),
        saver,
    ]


def fit_epochs(model, config, arrays, val_arrays, step, callback_list, saver, verbose, budget=None):
    """Train from global ``step`` to the last epoch; a partly done epoch is finished first. With ``val_arrays``
    the validation losses are computed every ``val_every`` epochs. An exhausted ``budget`` (a
    :class:`callbacks.TimeBudget`) ends training after the epoch it stopped (validated and checkpointed)."""
    train = config.train
    validation = None
    if val_arrays is not None and train.val_every:
        validation = pipeline.make_dataset(val_arrays, train.batch_size, training=False)
    epoch, done_in_epoch = divmod(step, train.steps_per_epoch)
    while epoch < train.epochs and not (budget and budget.exhausted_at(callbacks.global_step(model))):
        dataset = pipeline.make_training_dataset(arrays, train.batch_size, train.seed, epoch * train.steps_per_epoch
                                                 + done_in_epoch, train.augment, train.empty_slice_repeat)
        model.fit(dataset, initial_epoch=epoch, epochs=epoch + 1 if done_in_epoch else train.epochs,
                  steps_per_epoch=train.steps_per_epoch - done_in_epoch, callbacks=callback_list,
                  validation_data=validation, validation_freq=max(train.val_every, 1), shuffle=False,
                  verbose=verbose)
        if saver.diverged_at is not None:
            return
        epoch, done_in_epoch = (epoch + 1, 0) if done_in_epoch else (train.epochs, 0)


def _validation_items(items, split_map, max_images):
    """Up to ``max_images`` validation items spread over the split (none when the split is empty)."""
    if not split_map["val"]:
        return []
    from mrcnn_tf.evaluation.runner import spread_indices

    chosen = splits.select(items, split_map, "val")
    return [chosen[i] for i in spread_indices(max_images, len(chosen))]


def write_validation_report(model, reader, items, split_map, out_dir, verbose=1):
    """The evaluation report of the validation split in ``RUN/val_report`` (skipped when the split is empty)."""
    from mrcnn_tf.evaluation import commands

    if not split_map["val"]:
        print("no patient in the validation split: no validation report", file=sys.stderr)
        return None
    source = {"model": out_dir, "split": "val"}
    return commands.evaluate_items(model, reader, splits.select(items, split_map, "val"),
                                   os.path.join(out_dir, "val_report"), source=source, verbose=bool(verbose))


def prepare_splits(out_dir, items, arrays, train_config):
    """The run's ``splits.json``: read back when the run folder has one, made and written otherwise."""
    path = os.path.join(out_dir, splits.SPLITS_FILE)
    if os.path.isfile(path):
        return splits.read_splits(path)
    has_tumour = pipeline.has_instances(arrays["gt_classes"]).tolist()
    split_map = splits.make_splits(items, has_tumour, train_config.split_ratios, train_config.split_seed)
    splits.write_splits(split_map, path)
    return split_map


def subset(arrays, indices):
    """The rows ``indices`` of every array of a decoded dataset."""
    return {key: value[indices] for key, value in arrays.items()}


def load_run(run_dir, weights="final"):
    """The model of a run folder with its ``"final"`` weights or its ``"best"`` (by validation mask AP50);
    no pre-trained download: the run's weights win."""
    if weights not in ("final", "best"):
        raise ConfigError(f"weights must be 'final' or 'best', got {weights!r}")
    path = os.path.join(run_dir, WEIGHTS_FILE if weights == "final" else callbacks.BEST_WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise ConfigError(f"{path} does not exist: the run has no {weights} weights (has it finished?)")
    config = Config.from_json(os.path.join(run_dir, CONFIG_FILE))
    config = config.replace(backbone={"weights": "none", "norm": config.backbone.resolved_norm})
    set_precision(config.train.mixed_precision)
    model = build_model(config)
    model.load_weights(path)
    return model


def _pick_examples(arrays, count):
    """Up to ``count`` indices, half with a tumour and half without where possible, spread over the data."""
    has_tumour = pipeline.has_instances(arrays["gt_classes"])
    positives, negatives = np.flatnonzero(has_tumour), np.flatnonzero(~has_tumour)
    take_neg = min(len(negatives), count // 2)
    take_pos = min(len(positives), count - take_neg)
    from mrcnn_tf.evaluation.runner import spread_indices

    chosen = [group[spread_indices(k, len(group))] for group, k in ((positives, take_pos), (negatives, take_neg))]
    return sorted(np.concatenate(chosen).tolist())


def write_predictions(model, items, arrays, out_dir, count):
    """Overlays (ground truth green, prediction red) and ``predictions.json`` for ``count`` slices."""
    os.makedirs(out_dir, exist_ok=True)
    records = []
    for index in _pick_examples(arrays, count):
        image = arrays["images"][index]
        detections = inference.detect(model, image, items[index].image_path)
        name = os.path.splitext(os.path.basename(items[index].image_path))[0]
        overlay = visualize.draw_overlay(image, arrays["gt_masks"][index], detections)
        visualize.write_png(os.path.join(out_dir, name + ".png"), overlay)
        records.append({
            "image": items[index].image_path,
            "boxes_yxyx": [[round(float(v), 2) for v in box] for box in detections["boxes"]],
            "scores": [round(float(v), 4) for v in detections["scores"]],
            "classes": detections["classes"].tolist(),
            "mask_pixels": detections["masks"].sum(axis=(1, 2)).tolist(),
        })
    with open(os.path.join(out_dir, "predictions.json"), "w") as f:
        json.dump(records, f, indent=1)
    return records

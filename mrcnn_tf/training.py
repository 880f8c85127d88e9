"""A training run: data in, a run folder out (config, checkpoints, history, final weights, sample predictions).

The run folder's layout and file names are ``mrcnn_tf.runs``'.
"""
import functools
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from mrcnn_tf import callbacks, detectors, inference, model_settings, runs, visualize
from mrcnn_tf.export import EXPORT_FILE, export_model
from mrcnn_tf.data import pipeline, readers, splits
from mrcnn_tf.errors import ConfigError, TrainingDiverged
from mrcnn_tf.evaluation import commands
from mrcnn_tf.model import build_model
from mrcnn_tf.optimizer import FusedSGD
from mrcnn_tf.runs import path
from mrcnn_tf.schedules import WarmupSchedule


def make_optimizer(train):
    """The optimizer ``train.optimizer`` names, on the warm-up schedule, with decoupled weight decay and global
    gradient-norm clipping: ``sgd`` is SGD with momentum fused into one pass over each variable
    (:class:`~mrcnn_tf.optimizer.FusedSGD`), ``adamw`` is ``keras.optimizers.AdamW``."""
    total_steps = train.epochs * train.steps_per_epoch
    schedule = WarmupSchedule(train.learning_rate, train.warmup_steps, total_steps, train.lr_schedule)
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=train.weight_decay,
                                      global_clipnorm=train.clipnorm)
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
    runs.set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.train.seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(config)
        model.compile(optimizer=make_optimizer(config.train), jit_compile=model.runtime.jit_compile)
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
          data_format="auto", skip_bad=False, export=True, minutes=None, given=None):
    """Train on the dataset at ``data_root`` (any ``data.readers`` format) into the run folder ``out_dir``.

    ``out_dir`` must be absent, empty or a run folder of this tool (``runs.check_out_dir``), and is locked for
    the run (``runs.RunLock``). Everything is read and checked before anything is written; a failed start leaves
    the folder as it found it. A run folder that already holds a checkpoint is resumed: its own ``config.json``
    and ``splits.json`` are used and training continues from the last checkpoint's step; ``given`` (the settings
    the command line set explicitly, see :func:`resumed_config`) must agree with them. The config's
    ``class_names`` become the dataset's. ``minutes`` bounds the wall-clock time of the train steps over all
    sittings of the run (:class:`callbacks.TimeBudget`); training ends at the configured epochs or there,
    whichever comes first. SIGINT and SIGTERM stop it with a checkpoint (:class:`callbacks.StopOnSignal`).
    Returns the model; raises :class:`TrainingDiverged` when the loss stops being finite.
    """
    with runs.RunLock(out_dir) as lock:  # checks --out first (runs.check_out_dir)
        reader = readers.open_dataset(data_root, data_format, config.data)
        config, resuming = runs.resumable_config(out_dir, config.replace(class_names=tuple(reader.class_names)))
        if resuming:
            config = resumed_config(out_dir, config, given)
        all_items, arrays = load_examples(config, reader, max_slices, verbose=bool(verbose), skip_bad=skip_bad)
        split_map = prepare_splits(out_dir, all_items, arrays, config.train, write=False)
        model = compile_model(config, make_strategy(config.train.strategy))
        runs.write_config(out_dir, config)
        splits.write_splits(split_map, path(out_dir, runs.SPLITS_FILE))
        lock.commit()
        return _train_in(model, config, reader, all_items, arrays, split_map, out_dir, resuming,
                         num_predictions, verbose, validation_report, export, minutes)


def _train_in(model, config, reader, all_items, arrays, split_map, out_dir, resuming, num_predictions, verbose,
              validation_report, export, minutes):
    """The run itself, in its locked folder: fit from the last checkpoint, then the final weights, a few
    predictions, the export and the validation report."""
    position = {item: i for i, item in enumerate(all_items)}
    items = splits.select(all_items, split_map, "train")
    val_items = _validation_items(all_items, split_map, config.train.val_max_images)
    val_arrays = subset(arrays, [position[item] for item in val_items]) if val_items else None
    arrays = subset(arrays, [position[item] for item in items])
    manager = checkpoint_manager(model, out_dir)
    step = restore_latest(model, manager)
    if resuming:
        print(f"resuming {out_dir} from step {step} (checkpoint {manager.latest_checkpoint})", file=sys.stderr)
    saver = callbacks.CheckpointSaver(manager, config.train.checkpoint_every)
    budget = callbacks.TimeBudget(path(out_dir, runs.TIME_FILE), minutes) if minutes is not None else None
    with callbacks.StopOnSignal(manager, out_dir) as stopper:
        # The budget first: its clock then times the step alone, not the other callbacks' work; the stopper last.
        callback_list = (([budget] if budget else []) + run_callbacks(saver, reader, val_items, out_dir, config)
                         + [stopper])
        fit_epochs(model, config, arrays, val_arrays, step, callback_list, saver, verbose, budget)
        stopper.raise_if_stopped()
    if saver.diverged_at is not None:
        raise TrainingDiverged(f"the loss became NaN or infinite at step {saver.diverged_at}; training stopped and "
                               f"the last good checkpoint is {manager.latest_checkpoint}")
    runs.save_weights(model, path(out_dir, runs.WEIGHTS_FILE))
    if num_predictions:
        write_predictions(model, items, arrays, path(out_dir, runs.PREDICTIONS_DIR), num_predictions)
    if export:
        export_final(model, out_dir)
    if validation_report:
        write_validation_report(model, reader, all_items, split_map, out_dir, verbose)
    return model


# Settings a resumed run takes from the command line: more epochs extend it (minutes are not configuration: a
# budget always applies to the run's total).
EXTENDABLE = {("train", "epochs")}


def resumed_config(out_dir, run_config, given):
    """The run's configuration for resuming, with the settings in ``given`` (``{flag: (section or None, field,
    value)}``, the command line's explicit ones, each keyed by the flag as its user wrote it, e.g. ``"--lr"``)
    applied where that is safe (:data:`EXTENDABLE`, to a larger value); ConfigError naming each other flag that
    differs, the run's value and the given one."""
    changes, differ = {}, []
    for flag, (section, field, value) in (given or {}).items():
        current = getattr(run_config if section is None else getattr(run_config, section), field)
        if value == current:
            continue
        if (section, field) in EXTENDABLE and value > current:
            changes.setdefault(section, {})[field] = value
            continue
        differ.append(f"{flag}: the run has {current!r}, given {value!r}")
    if differ:
        raise ConfigError(f"{out_dir} is a run to resume, with its own settings; these flags differ from them: "
                          + "; ".join(differ) + ". Drop them to resume, or start a new run in another --out")
    if changes:
        print(f"resuming {out_dir} with {changes}", file=sys.stderr)
    return run_config.replace(**changes)


def checkpoint_manager(model, out_dir):
    """Resumable state of the run: model and optimizer (with its step counter) in ``RUN/state/``."""
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return tf.train.CheckpointManager(checkpoint, path(out_dir, runs.STATE_DIR),
                                      max_to_keep=model.config.train.keep_checkpoints)


def export_final(model, out_dir):
    """Export the final weights as the next version of ``RUN/export/`` (TF Serving's layout), unless its latest
    version already holds this step's (a finished run run again)."""
    base = path(out_dir, runs.EXPORT_DIR)
    step = callbacks.global_step(model)
    latest = model_settings.export_version_dir(base)
    if latest is not None:
        with open(os.path.join(latest, EXPORT_FILE)) as f:
            if json.load(f).get("source", {}).get("step") == step:
                return latest
    return export_model(model, base, source={"run": os.path.abspath(out_dir), "weights": "final", "step": step})


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
    writer = tf.summary.create_file_writer(path(out_dir, runs.TENSORBOARD_DIR))
    return [
        callbacks.ValidationMetrics(reader, val_items, out_dir, config.train.val_every, writer),
        callbacks.StepLogger(path(out_dir, runs.STEPS_FILE), writer),
        callbacks.HistoryLogger(path(out_dir, runs.HISTORY_FILE)),
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
                                                 + done_in_epoch, train.augment, train.empty_slice_repeat,
                                                 train.crop_size)
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
    chosen = splits.select(items, split_map, "val")
    return [chosen[i] for i in splits.spread_indices(max_images, len(chosen))]


def write_validation_report(model, reader, items, split_map, out_dir, verbose=1):
    """The evaluation report of the validation split in ``RUN/val_report`` (skipped when the split is empty)."""
    if not split_map["val"]:
        print("no patient in the validation split: no validation report", file=sys.stderr)
        return None
    source = {"model": out_dir, "split": "val"}
    return commands.evaluate_items(detectors.model_detector(model), reader, splits.select(items, split_map, "val"),
                                   path(out_dir, runs.VAL_REPORT_DIR), source=source, verbose=bool(verbose))


def prepare_splits(out_dir, items, arrays, train_config, write=True):
    """The run's split: its ``splits.json`` read back when the run folder has one, made (and written when
    ``write``) otherwise."""
    splits_path = path(out_dir, runs.SPLITS_FILE)
    if os.path.isfile(splits_path):
        return splits.read_splits(splits_path)
    has_tumour = pipeline.has_instances(arrays["gt_classes"]).tolist()
    split_map = splits.make_splits(items, has_tumour, train_config.split_ratios, train_config.split_seed)
    if write:
        splits.write_splits(split_map, splits_path)
    return split_map


def subset(arrays, indices):
    """The rows ``indices`` of every array of a decoded dataset."""
    return {key: value[indices] for key, value in arrays.items()}


def _pick_examples(arrays, count):
    """Up to ``count`` indices, half with a tumour and half without where possible, spread over the data."""
    has_tumour = pipeline.has_instances(arrays["gt_classes"])
    positives, negatives = np.flatnonzero(has_tumour), np.flatnonzero(~has_tumour)
    take_neg = min(len(negatives), count // 2)
    take_pos = min(len(positives), count - take_neg)
    chosen = [group[splits.spread_indices(k, len(group))]
              for group, k in ((positives, take_pos), (negatives, take_neg))]
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

"""A training run: data in, a run folder out (config, checkpoints, history, final weights, sample predictions).

Run folder layout::

    RUN/config.json                  the configuration trained with (Config.to_json)
    RUN/splits.json                  the patient-level train / val / test split (training uses train only)
    RUN/checkpoints/epoch_NNN.weights.h5
    RUN/history.csv                  the losses of every epoch
    RUN/steps.csv                    the losses and milliseconds of every step
    RUN/model.weights.h5             the final weights
    RUN/predictions/                 overlays and predictions.json for a few training slices
    RUN/val_report/                  the evaluation report of the validation split (as evaluate.py writes)
"""
import functools
import json
import os
import sys
import time

import keras
import numpy as np

from mrcnn_tf import inference, visualize
from mrcnn_tf.config import Config
from mrcnn_tf.data import pipeline, readers, splits
from mrcnn_tf.model import build_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"


class StepLogger(keras.callbacks.Callback):
    """Writes every step's own losses and wall time to a CSV file (``RUN/steps.csv``).

    The model reports running means over the epoch (what the progress bar shows); the loss of step ``n`` is
    recovered from two consecutive means: ``x_n = n m_n - (n - 1) m_{n-1}``.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.global_step = 0

    def on_train_begin(self, logs=None):
        self.file = open(self.path, "w")
        self.names = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.previous, self.step_in_epoch = epoch + 1, {}, 0
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.step_in_epoch += 1
        self.global_step += 1
        n, means = self.step_in_epoch, {k: float(v) for k, v in (logs or {}).items()}
        values = {k: n * m - (n - 1) * self.previous.get(k, 0.0) for k, m in means.items()}
        if self.names is None:
            self.names = sorted(values)
            self.file.write(",".join(["step", "epoch", "ms"] + self.names) + "\n")
        row = [str(self.global_step), str(self.epoch), f"{1000 * (now - self.start):.1f}"]
        self.file.write(",".join(row + [f"{values[k]:.6g}" for k in self.names]) + "\n")
        self.file.flush()
        self.previous, self.start = means, now

    def on_train_end(self, logs=None):
        self.file.close()


def set_precision(mixed_precision):
    """``mixed_float16`` for GPU users; float32 otherwise (mixed precision is 4-10x slower on a CPU)."""
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def make_optimizer(train):
    """SGD with momentum, decoupled weight decay and global gradient-norm clipping."""
    return keras.optimizers.SGD(
        learning_rate=train.learning_rate,
        momentum=train.momentum,
        weight_decay=train.weight_decay,
        global_clipnorm=train.clipnorm,
    )


def compile_model(config):
    """A built and compiled :class:`MaskRCNN` for ``config``."""
    set_precision(config.train.mixed_precision)
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config)
    model.compile(optimizer=make_optimizer(config.train), jit_compile=config.train.jit_compile)
    return model


def load_examples(config, reader, max_slices=None, verbose=True, skip_bad=False):
    """The items of ``reader`` (the first ``max_slices`` if given) that decode, and their decoded arrays."""
    items = reader.items[:max_slices]
    load = functools.partial(readers.load_example, reader, image_size=config.image_size,
                             max_instances=config.max_instances)
    return pipeline.decode_all(items, load, verbose=verbose, skip_bad=skip_bad)


def train(config, data_root, out_dir, max_slices=None, num_predictions=8, verbose=1, validation_report=True,
          data_format="auto", skip_bad=False):
    """Train on the dataset at ``data_root`` (any ``data.readers`` format); write the run folder ``out_dir``.

    The config's ``class_names`` are replaced by the dataset's. Returns the model.
    """
    reader = readers.open_dataset(data_root, data_format)
    config = config.replace(class_names=tuple(reader.class_names))
    items, arrays = load_examples(config, reader, max_slices, verbose=bool(verbose), skip_bad=skip_bad)
    os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    config.to_json(os.path.join(out_dir, CONFIG_FILE))
    split_map = prepare_splits(out_dir, items, arrays, config.train)
    all_items, position = items, {item: i for i, item in enumerate(items)}
    items = splits.select(items, split_map, "train")
    arrays = subset(arrays, [position[item] for item in items])
    dataset = pipeline.make_dataset(arrays, config.train.batch_size, training=True, seed=config.train.seed)
    model = compile_model(config)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            os.path.join(out_dir, "checkpoints", "epoch_{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv")),
        StepLogger(os.path.join(out_dir, "steps.csv")),
        keras.callbacks.TerminateOnNaN(),
    ]
    model.fit(
        dataset,
        epochs=config.train.epochs,
        steps_per_epoch=config.train.steps_per_epoch,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself
        verbose=verbose,
    )
    model.save_weights(os.path.join(out_dir, WEIGHTS_FILE))
    if num_predictions:
        write_predictions(model, items, arrays, os.path.join(out_dir, "predictions"), num_predictions)
    if validation_report:
        write_validation_report(model, reader, all_items, split_map, out_dir, verbose)
    return model


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
    has_tumour = (arrays["gt_classes"] >= 0).any(axis=1).tolist()
    split_map = splits.make_splits(items, has_tumour, train_config.split_ratios, train_config.split_seed)
    splits.write_splits(split_map, path)
    return split_map


def subset(arrays, indices):
    """The rows ``indices`` of every array of a decoded dataset."""
    return {key: value[indices] for key, value in arrays.items()}


def load_run(run_dir):
    """The model of a run folder, with its final weights (no pre-trained download: the run's weights win)."""
    config = Config.from_json(os.path.join(run_dir, CONFIG_FILE))
    config = config.replace(backbone={"weights": "none", "norm": config.backbone.resolved_norm})
    set_precision(config.train.mixed_precision)
    model = build_model(config)
    model.load_weights(os.path.join(run_dir, WEIGHTS_FILE))
    return model


def _pick_examples(arrays, count):
    """Up to ``count`` indices, half with a tumour and half without where possible, spread over the data."""
    has_tumour = (arrays["gt_classes"] >= 0).any(axis=1)
    positives, negatives = np.flatnonzero(has_tumour), np.flatnonzero(~has_tumour)
    take_neg = min(len(negatives), count // 2)
    take_pos = min(len(positives), count - take_neg)
    spread = lambda idx, k: idx[np.linspace(0, len(idx) - 1, k).astype(int)] if k else idx[:0]
    return sorted(np.concatenate([spread(positives, take_pos), spread(negatives, take_neg)]).tolist())


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

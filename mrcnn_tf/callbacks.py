"""Keras callbacks of a training run: per-step log, resumable checkpoints, validation AP, TensorBoard.

A run folder's ``state/`` holds ``tf.train.Checkpoint`` s of the model and the optimizer (weights, momentum,
step counter; the learning-rate schedule is a function of that counter). ``CheckpointManager`` writes a new
checkpoint completely before it points ``state/checkpoint`` at it, so a run killed at any moment, even during a
save, finds the previous checkpoint intact.
"""
import csv
import glob
import json
import math
import os
import shutil
import signal
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from mrcnn_tf import detectors, runs, visualize
from mrcnn_tf.data.splits import spread_indices
from mrcnn_tf.errors import CheckpointFailed, ConfigError, TrainingInterrupted
from mrcnn_tf.evaluation import ap, confusion, runner



def global_step(model):
    """The optimizer's step counter (restored with the checkpoint) as a Python int."""
    return int(model.optimizer.iterations.numpy())


def current_learning_rate(model):
    rate = model.optimizer.learning_rate
    return float(rate.numpy() if hasattr(rate, "numpy") else rate)


def drop_rows_after(path, step):
    """Rewrite the CSV log ``path`` (atomically) without its rows whose ``step`` column is after ``step``: the rows
    a killed run wrote after its last checkpoint, which the resumed run writes again. Returns the header line
    ("" when there is no log yet)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return ""
    with open(path, newline="") as f:
        text = f.read()
    ending = "\r\n" if "\r\n" in text else "\n"  # Keras' CSVLogger ends lines with \r\n, StepLogger with \n
    header, *rows = text.splitlines()
    column = next(csv.reader([header])).index("step")
    kept = [row for row in rows if row and float(next(csv.reader([row]))[column]) <= step]
    with open(path + ".tmp", "w", newline="") as f:
        f.write(ending.join([header] + kept) + ending)
    os.replace(path + ".tmp", path)
    return header


class StepLogger(keras.callbacks.Callback):
    """Every step's own losses, learning rate and wall time: ``steps.csv`` and, every ``tensorboard_every``
    steps, TensorBoard scalars ``step/<loss>`` and ``step/learning_rate``.

    The model reports running means over the epoch (what the progress bar shows); the loss of step ``n`` is
    recovered from two consecutive means: ``x_n = n m_n - (n - 1) m_{n-1}``. A resumed run first drops the rows
    of steps after its checkpoint (steps a killed run logged but will redo), so each step has one row.
    """

    def __init__(self, path, writer=None, tensorboard_every=10):
        super().__init__()
        self.path, self.writer, self.tensorboard_every = path, writer, tensorboard_every
        self.names = None

    def on_train_begin(self, logs=None):
        header = drop_rows_after(self.path, global_step(self.model))
        if header:
            self.names = header.split(",")[4:]
        self.file = open(self.path, "a")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.previous, self.step_in_epoch = epoch + 1, {}, 0
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.step_in_epoch += 1
        n, means = self.step_in_epoch, {k: float(v) for k, v in (logs or {}).items()}
        values = {k: n * m - (n - 1) * self.previous.get(k, 0.0) for k, m in means.items()}
        step, rate = global_step(self.model), current_learning_rate(self.model)
        if self.names is None:
            self.names = sorted(values)
            self.file.write(",".join(["step", "epoch", "ms", "learning_rate"] + self.names) + "\n")
        row = [str(step), str(self.epoch), f"{1000 * (now - self.start):.1f}", f"{rate:.6g}"]
        self.file.write(",".join(row + [f"{values.get(k, float('nan')):.6g}" for k in self.names]) + "\n")
        self.file.flush()
        if self.writer is not None and step % self.tensorboard_every == 0:
            with self.writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(f"step/{name}", value)
                tf.summary.scalar("step/learning_rate", rate)
        self.previous, self.start = means, now

    def on_train_end(self, logs=None):
        self.file.close()


class HistoryLogger(keras.callbacks.CSVLogger):
    """Keras' ``CSVLogger`` (one row of logs an epoch, appended), with the step each epoch ended at in a ``step``
    column; a resumed run first drops the rows of epochs that ended after its checkpoint, which it redoes."""

    def __init__(self, path):
        super().__init__(path, append=True)

    def on_train_begin(self, logs=None):
        drop_rows_after(self.filename, global_step(self.model))
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["step"] = global_step(self.model)  # also for the callbacks after this one, and fit's History
        super().on_epoch_end(epoch, logs)


class CheckpointSaver(keras.callbacks.Callback):
    """Saves ``manager`` every ``every`` steps and at each epoch end, unless the loss is no longer finite: then
    training stops, nothing more is saved, and ``diverged_at`` records the step.

    The last step of an epoch (or the step a callback before this one stopped training at, as the time budget
    does) is saved at the epoch end only, after the callbacks before this one in the list (validation, logs) have
    run: a run killed while they run resumes before that step and redoes them too, instead of resuming at the
    next epoch with the finished one's validation and log rows lost.
    """

    def __init__(self, manager, every):
        super().__init__()
        self.manager, self.every = manager, every
        self.diverged_at = None

    def _finite(self, logs):
        return all(math.isfinite(float(v)) for v in (logs or {}).values())

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if not self._finite(logs):
            self.diverged_at = step
            self.model.stop_training = True
        elif step % self.every == 0 and batch + 1 != self.params.get("steps") and not self.model.stop_training:
            save_checkpoint(self.manager, step)

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged_at is None:
            save_checkpoint(self.manager, global_step(self.model))


def save_checkpoint(manager, step):
    """``manager.save`` at ``step``; when the write fails (a full disk), the files it began are removed and
    CheckpointFailed says that the previous checkpoint is kept (the manager records a checkpoint, and deletes older
    ones, only after a whole write)."""
    try:
        manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as error:
        prefix = os.path.join(manager.directory, f"ckpt-{step}")
        for partial in glob.glob(prefix + ".*") + glob.glob(prefix + "_temp*"):
            if os.path.isdir(partial):
                shutil.rmtree(partial, ignore_errors=True)
            else:
                os.remove(partial)
        kept = manager.latest_checkpoint or "none yet"
        raise CheckpointFailed(f"could not write the checkpoint of step {step} in {manager.directory} ({error}); the "
                               f"previous checkpoint is kept ({kept}): free some space and run the same command "
                               "again to resume from it") from error


class StopOnSignal(keras.callbacks.Callback):
    """SIGINT (Ctrl-C) or SIGTERM during training: the step in progress ends, a checkpoint is saved at it and
    training stops with TrainingInterrupted (saying how to resume); a second signal stops at once. Signals that
    come during an epoch's end (validation) take effect at the next step or when fit returns
    (:meth:`raise_if_stopped`). Must be the last callback: the step's logs are written before its checkpoint."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, manager, run_dir):
        super().__init__()
        self.manager, self.run_dir = manager, run_dir
        self.received = None
        self.previous = {}

    def __enter__(self):
        for number in self.SIGNALS:
            self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exception):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False

    def _handle(self, number, frame):
        if self.received is not None:  # the second one
            self.__exit__()
            raise KeyboardInterrupt
        self.received = signal.Signals(number)
        print(f"{self.received.name}: stopping after this step with a checkpoint (send it again to stop at once)",
              file=sys.stderr, flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.received is not None:
            save_checkpoint(self.manager, global_step(self.model))
            self.raise_if_stopped()

    def raise_if_stopped(self):
        """TrainingInterrupted if a signal came (the latest checkpoint is at the step training stopped at)."""
        if self.received is None:
            return
        raise TrainingInterrupted(
            f"{self.received.name}: training stopped at step {global_step(self.model)} with a checkpoint "
            f"({self.manager.latest_checkpoint}); run the same command again to resume {self.run_dir}",
            exit_code=128 + int(self.received))


def read_time_file(time_file):
    """A run's ``TimeBudget`` file: ``(seconds of train steps spent, the step they reached)``, ``(0.0, 0)`` when
    it has none."""
    if not os.path.isfile(time_file):
        return 0.0, 0
    with open(time_file) as f:
        record = json.load(f)
    return float(record["train_seconds"]), int(record.get("step", 0))


def spent_seconds(time_file):
    """The seconds of train steps a run has already spent, from its ``TimeBudget`` file (0 when it has none)."""
    return read_time_file(time_file)[0]


class TimeBudget(keras.callbacks.Callback):
    """Stops training once the run's train steps have taken ``minutes`` of wall clock, over all its sittings.

    The clock runs from each step's start to its end (graph tracing included; validation, checkpoints and
    reports excluded when this callback comes first in the list) and is kept in ``RUN/train_time.json`` after
    every step, so a resumed run goes on with the time it has left. Time of steps redone after a kill counts
    too: it was spent. Keras still ends the epoch the budget stops (validation, checkpoint, ``history.csv``
    row); a later sitting with a larger budget finishes that epoch and writes a second row for it, at its step.
    A run killed after its budget ran out but before its last steps were checkpointed redoes those steps first.
    """

    def __init__(self, path, minutes, clock=time.perf_counter):
        super().__init__()
        if minutes <= 0:
            raise ConfigError(f"a time budget must be positive, got {minutes} minutes")
        self.path, self.budget, self.clock = path, 60.0 * minutes, clock
        self.seconds, self.reached_step = read_time_file(path)
        self._start = None

    def exhausted_at(self, step):
        """Whether training at global ``step`` is over: the budget is spent and the run is back at the step it had
        reached when it was spent (a resumed run may restart before it)."""
        return self.seconds >= self.budget and step >= self.reached_step

    def on_train_batch_begin(self, batch, logs=None):
        self._start = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds += self.clock() - self._start
        with open(self.path + ".tmp", "w") as f:
            json.dump({"train_seconds": round(self.seconds, 2), "step": global_step(self.model),
                       "budget_seconds": self.budget}, f)
        os.replace(self.path + ".tmp", self.path)
        if self.exhausted_at(global_step(self.model)):
            self.model.stop_training = True


class EpochTensorBoard(keras.callbacks.Callback):
    """Every epoch's logs (training means, validation losses and AP figures) as TensorBoard scalars."""

    def __init__(self, writer):
        super().__init__()
        self.writer = writer

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=global_step(self.model)):
            for name, value in (logs or {}).items():
                if name != "step":  # the summary's own step already
                    tf.summary.scalar(f"epoch/{name}", float(value))
            tf.summary.scalar("epoch/learning_rate", current_learning_rate(self.model))
        self.writer.flush()


class ValidationMetrics(keras.callbacks.Callback):
    """Every ``every`` epochs: equation-(3) AP and image-level F1 on validation slices, added to the epoch's
    logs as ``val_box_ap50``, ``val_mask_ap50``, ``val_f1``; the best weights by ``val_mask_ap50`` are kept in
    ``best.weights.h5`` (``best.json`` says which step), a few overlays go to TensorBoard.

    It must come before the callbacks that write the logs (CSV, TensorBoard) in the callback list.
    """

    def __init__(self, reader, items, out_dir, every=1, writer=None, score_threshold=0.5):
        super().__init__()
        self.reader, self.items, self.out_dir = reader, items, out_dir
        self.every, self.writer, self.score_threshold = every, writer, score_threshold
        self.best_path = os.path.join(out_dir, runs.BEST_FILE)
        self.best = json.load(open(self.best_path)) if os.path.isfile(self.best_path) else None

    def on_epoch_end(self, epoch, logs=None):
        if not self.items or not self.every or (epoch + 1) % self.every:
            return
        keep = spread_indices(4, len(self.items))
        detect = detectors.model_detector(self.model)
        records, images = runner.predict_records(detect, self.items, self.reader, keep, verbose=False)
        counts = confusion.image_level_counts(records, self.score_threshold)
        figures = {
            "val_box_ap50": ap.dataset_ap(records, "box")["ap"],
            "val_mask_ap50": ap.dataset_ap(records, "mask")["ap"],
            "val_f1": confusion.metrics_from_counts(**counts)["f1"],
        }
        logs.update({k: (np.nan if v is None else float(v)) for k, v in figures.items()})
        self._keep_best(epoch, figures)
        self._log_images(records, images)

    def _keep_best(self, epoch, figures):
        score = figures["val_mask_ap50"]
        if score is None or (self.best is not None and score <= self.best["val_mask_ap50"]):
            return
        # written beside, then renamed: a kill while writing leaves the last best whole
        runs.save_weights(self.model, os.path.join(self.out_dir, runs.BEST_WEIGHTS_FILE))
        self.best = {"epoch": epoch + 1, "step": global_step(self.model), **figures}
        with open(self.best_path + ".tmp", "w") as f:
            json.dump(self.best, f, indent=1)
        os.replace(self.best_path + ".tmp", self.best_path)

    def _log_images(self, records, images):
        if self.writer is None or not images:
            return
        tiles = []
        for index, image in sorted(images.items()):
            record = records[index]
            keep = record.detections_above(self.score_threshold)
            found = {"boxes": record.det_boxes[keep], "scores": record.det_scores[keep],
                     "masks": record.det_masks[keep]}
            tiles.append(visualize.draw_overlay(image, record.gt_masks, found))
        same_size = [t for t in tiles if t.shape == tiles[0].shape]
        with self.writer.as_default(step=global_step(self.model)):
            tf.summary.image("validation/overlays", np.stack(same_size), max_outputs=len(same_size))

"""A decaying learning-rate schedule sized to a time budget: time train steps first, then ask for as many
steps as the budget holds, so that the rate reaches 0 when the budget ends on this machine rather than part-way
down the curve (a run stopped by ``--minutes`` half-way down a cosine has trained at a high rate throughout).

``mrcnn-train --minutes N --fit-schedule`` (or ``--preset best --minutes N``) and ``benchmarks/accuracy.py`` use
it. A resumed run keeps the schedule its folder recorded. A run killed before its first checkpoint starts again
from step 0 and plans again, for the minutes its budget has left (``RUN/train_time.json`` keeps the time its
steps already took).
"""
import json
import os
import sys
import time

import keras
import numpy as np

from mrcnn_tf import callbacks, runs, training
from mrcnn_tf.data import pipeline, readers
from mrcnn_tf.config import setting_key
from mrcnn_tf.data.splits import spread_indices

# A new run plans its steps to fill this share of the budget: the rest absorbs steps slower than the measured
# ones (a busier machine, slices with more tumours).
SCHEDULE_MARGIN = 0.95

# The ``train`` fields a schedule of N steps sets (:func:`fit_steps`): a resumed run checks a given budget by them.
SCHEDULE_FIELDS = ("epochs", "steps_per_epoch")


def fit_schedule(config, minutes, step_seconds, margin=SCHEDULE_MARGIN):
    """``config`` with the steps that ``margin`` of ``minutes`` holds at ``step_seconds`` a step, in its epochs
    (:func:`fit_steps`)."""
    return fit_steps(config, int(60.0 * minutes * margin / step_seconds))


def fit_steps(config, steps):
    """``config`` with a schedule of about ``steps`` train steps: its number of epochs (each ends with a validation
    and a checkpoint), fewer only when there are fewer steps, each as long as ``steps`` allows (``steps`` less the
    remainder of its division by the epochs). A budget four times larger gives epochs four times longer, not four
    times the validations."""
    steps = max(int(steps), 1)
    epochs = min(max(config.train.epochs, 1), steps)
    return config.replace(train=dict(zip(SCHEDULE_FIELDS, (epochs, steps // epochs))))


def overridden_settings(settings):
    """The ``"section.key=value"`` strings among ``settings`` that :func:`fit_steps` overrides: those of the epoch
    length (the number of epochs stays the one given)."""
    return [s for s in settings if setting_key(s) == f"train.{SCHEDULE_FIELDS[1]}"]


def measure_step_seconds(config, data_root, data_format="auto", skip_bad=False, steps=20, warmup=3, slices=64):
    """The median seconds of a train step of ``config`` as ``model.fit`` runs it (on the default strategy), on
    ``slices`` slices spread over the dataset at ``data_root``, after ``warmup`` steps. Real slices, not a
    synthetic one: their 1-4 tumours send more positive RoIs through the mask head, which sets much of a step's
    time.

    The median, not the mean: the first steps meet new shapes (counts of positive RoIs) and trace or compile
    for them, seconds each, once per process; their mean would plan too few steps for the budget and end the
    schedule early (benchmarks/RESULTS.md, run B4)."""
    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    reader = readers.open_dataset(data_root, data_format, config.data)
    config = config.replace(class_names=tuple(reader.class_names))  # as training.train does
    positions = spread_indices(slices, len(reader.items))
    _, arrays = training.load_examples(config, reader, verbose=False, skip_bad=skip_bad, positions=positions)
    model = training.compile_model(config)
    dataset = pipeline.make_training_dataset(arrays, config.train.batch_size, augment=config.train.augment,
                                             empty_repeat=config.train.empty_slice_repeat,
                                             crop_size=config.train.crop_size)
    times = StepTimes()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[times], verbose=0)
    return float(np.median(times.seconds[warmup:]))


def plan_schedule(config, data_root, out_dir, minutes, data_format="auto", skip_bad=False):
    """The configuration to train: ``config`` with its schedule sized to what is left of ``minutes``
    (``fit_schedule``) when it is a new run with a budget and a decaying schedule, else ``config`` unchanged (a
    resumed run keeps its own folder's). What was measured and planned goes to ``RUN/schedule.json``, written in
    the run folder held as training holds it (``runs.RunLock``: only a new, empty or run folder)."""
    runs.check_out_dir(out_dir)
    _, resuming = runs.resumable_config(out_dir, config)
    if resuming:
        return config
    plan_path = runs.path(out_dir, runs.SCHEDULE_FILE)
    if os.path.isfile(plan_path):  # a plan of an earlier start that never reached a checkpoint
        os.remove(plan_path)
    if minutes is None or config.train.lr_schedule == "constant":
        return config
    left = minutes - callbacks.spent_seconds(runs.path(out_dir, runs.TIME_FILE)) / 60.0
    if left <= 0:  # the budget is spent: training stops at once, whatever the schedule
        return config
    with runs.RunLock(out_dir) as lock:
        step_seconds = measure_step_seconds(config, data_root, data_format, skip_bad)
        config = fit_schedule(config, left, step_seconds)
        train = config.train
        plan = {"measured_step_seconds": round(step_seconds, 3), "minutes": minutes, "minutes_left": round(left, 2),
                "margin": SCHEDULE_MARGIN, "epochs": train.epochs, "steps_per_epoch": train.steps_per_epoch,
                "steps": train.epochs * train.steps_per_epoch}
        print(f"schedule sized to the budget: {json.dumps(plan)}", file=sys.stderr)
        with open(plan_path, "w") as f:
            json.dump(plan, f, indent=1)
        lock.commit()
    return config

"""Accuracy on real MRI: train one of the package's presets, then score the best checkpoint on the test split.

    python benchmarks/accuracy.py --data DATA --out runs/acc --preset best --minutes 75
    python benchmarks/accuracy.py --data DATA --out runs/acc_paper --preset paper

Trains with the patient-level 70:20:10 split (``RUN/splits.json``), validates every epoch, keeps the weights
with the best validation mask AP50 (``RUN/best.weights.h5``), then writes the test split's report as

    python evaluate.py --model RUN --data DATA --split test --weights best --out RUN/test_report

would, plus ``RUN/learning_curve.png`` (losses and validation figures against the step) and
``RUN/accuracy.json`` (settings, training minutes, steps, validation and test figures), and prints the
summary as one JSON line. ``--minutes`` bounds the wall-clock time of the train steps, over all sittings:
killing the command and running it again resumes the run where its last checkpoint left it.

The recipes are the package's presets (``mrcnn_tf.config.PRESETS``), so that this benchmark measures what
``mrcnn-train --preset NAME`` trains: ``paper`` is the paper's Table 2 (256x256, batch 1, learning rate 0.001,
200 steps x 30 epochs) scored at the paper's score threshold 0.5; ``best`` is what trains fastest from scratch on a
CPU budget (``benchmarks/RESULTS.md`` has the runs that chose it), scored at the threshold that gives the best
image-level F1 on the validation split among those with validation precision >= 0.97. Each preset's ``scoring``
says which.

With ``--minutes``, a new run of a preset that fits its schedule (``best``) sizes its cosine schedule to the budget
(``mrcnn_tf.budget``): it times 20 train steps of its configuration on slices of the dataset first, then asks for
as many steps as ``budget.SCHEDULE_MARGIN`` (95%) of the budget holds, so that the learning rate reaches 0 when the
budget ends on this machine rather than part-way down the curve. A resumed run keeps the schedule its folder
recorded.

Choosing a lever (a setting of the preset) is done on the validation split, at equal minutes given as steps:

    python benchmarks/step_cost.py --data DATA --preset best --minutes 20 --variant crop192 train.crop_size=192
    python benchmarks/accuracy.py --data DATA --out runs/levers/crop192 --preset best --split val --steps 4024 \
        --set train.crop_size=192

``--set`` changes settings of the preset, ``--steps`` fixes the schedule's length (two runs sharing a machine train
the same steps), ``--split val`` scores the validation split in ``RUN/val_report`` (the test split is not read), and
``--tta`` scores with the test-time flip. A run is resumed by the same command, or by one without ``--set`` and
``--steps``; a ``--set`` or ``--steps`` that differs from the run's own settings is refused, naming each, except
more epochs (``--set train.epochs=N``), which extend it. The epoch length cannot be set where ``--steps`` or the
budget sizes the schedule (``budget.overridden_settings``).
"""
import argparse
import csv
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mrcnn_tf import budget, config  # noqa: E402
from mrcnn_tf.errors import run_command  # noqa: E402

SUMMARY_KEYS = {
    "precision": ("image_level", "precision"), "recall": ("image_level", "recall"), "f1": ("image_level", "f1"),
    "precision_localised": ("image_level_localised", "precision"),
    "recall_localised": ("image_level_localised", "recall"), "f1_localised": ("image_level_localised", "f1"),
    "iou_per_slice_region": ("iou", "image_mean"), "iou_matched_pair": ("iou", "matched_pair_mean"),
    "box_ap50": ("ap", "box_ap50"), "mask_ap50": ("ap", "mask_ap50"),
    "coco_box_ap": ("coco", "box", "ap"), "coco_mask_ap": ("coco", "mask", "ap"),
    "dice_per_patient": ("dice", "per_patient_mean"), "dice_per_slice": ("dice", "per_slice_mean"),
}
# The summary's figures that the report gives a 95% interval (report.json's "intervals", the same path inside it).
INTERVAL_KEYS = ("precision", "recall", "f1", "precision_localised", "recall_localised", "f1_localised",
                 "box_ap50", "mask_ap50", "dice_per_patient")


def training_config(name, data_root, out_dir, minutes, settings=(), steps=None):
    """The configuration to train for the preset ``name``: its changes over the package defaults, then
    ``settings`` (``"section.key=value"`` strings, :meth:`config.Config.with_settings`), with a schedule of
    ``steps`` steps when given, else sized to ``minutes`` when the preset asks for it (``Preset.fit_schedule``;
    a resumed run keeps its own). ConfigError for a setting the sizing would override
    (``budget.overridden_settings``)."""
    train_config = config.Config.from_preset(name).with_settings(settings)
    sized = steps is not None or (config.preset(name).fit_schedule and minutes is not None)
    fixed = budget.overridden_settings(settings)
    if sized and fixed:  # it would be overridden, then recorded as asked and refused when the run resumes
        raise config.ConfigError(f"--set {fixed[0]}: the schedule's length comes from --steps, or from --minutes "
                                 f"for the preset {name!r}; drop it")
    if steps is not None:
        return budget.fit_steps(train_config, steps)
    if config.preset(name).fit_schedule:
        train_config = budget.plan_schedule(train_config, data_root, out_dir, minutes)
    return train_config


def given_settings(train_config, settings=(), steps=None):
    """What this command sets explicitly, as ``training.resumed_config`` checks it against a run being resumed
    (``{"--flag ...": (section or None, field, value)}``, values as ``train_config`` has them): each ``--set``
    key, and the epochs and epoch length that ``--steps`` fixes. A resumed run keeps its own settings, so a
    command asking for others is refused rather than silently training the old recipe under the new name."""
    given = {}
    for assignment in settings:
        path = config.setting_key(assignment).split(".")
        section, field = (None, path[0]) if len(path) == 1 else path
        value = getattr(train_config if section is None else getattr(train_config, section), field)
        given[f"--set {'.'.join(path)}"] = (section, field, tuple(value) if isinstance(value, list) else value)
    if steps is not None:
        for field in budget.SCHEDULE_FIELDS:
            given[f"--steps {steps} (train.{field})"] = ("train", field, getattr(train_config.train, field))
    return given


def run_settings(run_config, name):
    """The settings of ``run_config`` that differ from the preset ``name``'s, as ``--set`` takes them
    (``"section.key=value"``), leaving out the schedule's length (``budget.SCHEDULE_FIELDS``) and the class names
    (the dataset's): what the run changed, whichever sitting's command gave it."""
    preset = config.Config.from_preset(name)
    changed = []
    for field in dataclasses.fields(run_config):
        mine, preset_value = getattr(run_config, field.name), getattr(preset, field.name)
        if not dataclasses.is_dataclass(mine):
            if field.name != "class_names" and mine != preset_value:
                changed.append(f"{field.name}={_setting_text(mine)}")
            continue
        for key in dataclasses.fields(mine):
            if field.name == "train" and key.name in budget.SCHEDULE_FIELDS:
                continue
            if getattr(mine, key.name) != getattr(preset_value, key.name):
                changed.append(f"{field.name}.{key.name}={_setting_text(getattr(mine, key.name))}")
    return changed


def _setting_text(value):
    return value if isinstance(value, str) else json.dumps(value)


def read_json(path):
    """The JSON content of ``path``, or None when the file does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_columns(path):
    """A CSV file as dict column -> list of floats (NaN for ``NA`` or empty cells)."""
    columns = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                columns.setdefault(key, []).append(number)
    return columns


def _lookup(tree, keys):
    """``tree[keys[0]][keys[1]]...``."""
    for key in keys:
        tree = tree[key]
    return tree


def _rounded(value):
    return None if value is None else round(float(value), 4)


def summarise(report):
    """The headline figures of an evaluation report (``report.json``), their 95% intervals as ``[low, high]``
    (None where a figure has none), the image-level counts and how the bootstrap drew."""
    out = {name: _rounded(_lookup(report, keys)) for name, keys in SUMMARY_KEYS.items()}
    out.update({k: report["image_level"][k] for k in ("tp", "fp", "fn", "tn")})
    out["mislocated"] = report["image_level_localised"]["mislocated"]
    entries = {name: _lookup(report["intervals"], SUMMARY_KEYS[name]) for name in INTERVAL_KEYS}
    out["intervals"] = {name: None if entry["low"] is None else [_rounded(entry["low"]), _rounded(entry["high"])]
                        for name, entry in entries.items()}
    out["intervals_bootstrap"] = report["intervals"]["bootstrap"]
    return out


def run(args):
    """Train the preset ``args.preset`` in ``args.out`` and score the test split; returns the summary it writes
    to ``RUN/accuracy.json``."""
    from mrcnn_tf import runs, training
    from mrcnn_tf.evaluation import commands, plots

    started = time.time()
    train_config = training_config(args.preset, args.data, args.out, args.minutes, args.set, args.steps)
    training.train(train_config, args.data, args.out, num_predictions=0, validation_report=False,
                   export=False, minutes=args.minutes, given=given_settings(train_config, args.set, args.steps))
    trained_at = time.time()
    history = read_columns(runs.path(args.out, runs.HISTORY_FILE))
    steps = read_columns(runs.path(args.out, runs.STEPS_FILE))
    plots.plot_learning_curve(steps, history, os.path.join(args.out, "learning_curve.png"))
    best = read_json(runs.path(args.out, runs.BEST_FILE))
    if best is None:  # no validation AP yet (e.g. the budget ended before the first epoch end)
        print("no best weights by validation: scoring the final weights", file=sys.stderr)
    weights = "final" if best is None else "best"
    report = commands.evaluate_run(args.out, args.data, args.split, os.path.join(args.out, f"{args.split}_report"),
                                   weights=weights, flip_tta=args.tta, **config.preset(args.preset).scoring)
    clock = read_json(runs.path(args.out, runs.TIME_FILE))
    train_seconds = None if clock is None else clock["train_seconds"]
    run_config = runs.read_config(args.out)  # a resumed run keeps its own
    summary = {
        "preset": args.preset, "settings": run_settings(run_config, args.preset), "data": args.data,
        "minutes_budget": args.minutes,
        "steps_budget": args.steps, "weights": weights, "flip_tta": args.tta,
        "train_minutes": None if train_seconds is None else round(train_seconds / 60, 1),
        "steps": int(steps["step"][-1]), "best": best, "split": args.split, args.split: summarise(report),
        "score_threshold": report["thresholds"]["score"],
        "score_threshold_chosen_on_val": report["source"].get("score_threshold_chosen_on_val"),
        "this_sitting_wall_minutes": {"training": round((trained_at - started) / 60, 1),
                                      "report": round((time.time() - trained_at) / 60, 1)},
        "train_settings": dataclasses.asdict(run_config.train),
        "schedule_sized_to_budget": read_json(runs.path(args.out, runs.SCHEDULE_FILE)),
    }
    with open(os.path.join(args.out, "accuracy.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the dataset (e.g. the LGG download's kaggle_3m folder)")
    p.add_argument("--out", required=True, help="run folder (rerun the same command to resume)")
    p.add_argument("--preset", choices=sorted(config.PRESETS), default="best",
                   help="the package's training recipe (mrcnn_tf.config.PRESETS)")
    p.add_argument("--minutes", type=float, default=None,
                   help="budget of train-step minutes, over all sittings of the run")
    p.add_argument("--steps", type=int, default=None,
                   help="a schedule of this many train steps instead of one sized to --minutes (a budget that a "
                        "busy machine does not change: levers compared at equal minutes on a quiet machine get "
                        "steps in proportion to their step times, benchmarks/step_cost.py)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="change one setting of the preset (repeatable), e.g. roi.mask_rois_per_image=8")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="the split to score: val while choosing (a lever, a recipe), test once for a final recipe")
    p.add_argument("--tta", action="store_true", help="score with the test-time flip (evaluate.py --tta)")
    args = p.parse_args(argv)
    return run_command(lambda: run(args), lambda _: f"{args.split} report in {args.out}/{args.split}_report")


if __name__ == "__main__":
    sys.exit(main())

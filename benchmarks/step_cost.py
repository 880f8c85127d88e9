"""What a lever costs a train step, and so how many steps a time budget holds: the median train-step time of a
preset and of each variant of it, on real slices, timed in turns so that a machine's drift falls on all alike.

    python benchmarks/step_cost.py --data DATA --preset best --minutes 75 \\
        --variant cheap_rois "roi.batch_size_per_image=64" "roi.mask_rois_per_image=8" \\
        --variant lr_0.02 "train.learning_rate=0.02"

Each round times every configuration once (``budget.measure_step_seconds``: 20 steps after 3 of warm-up, as
``model.fit`` runs them, on 64 slices spread over the dataset; a fresh model each time). Prints one JSON line: per
configuration its settings, the step seconds of each round, their median, and ``steps_in_budget``, the steps that
``budget.SCHEDULE_MARGIN`` of ``--minutes`` holds at that median: what ``benchmarks/accuracy.py --steps`` gives
each lever so that levers are compared at equal minutes on any machine, busy or not. Run it alone on the machine.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from mrcnn_tf import budget, config  # noqa: E402
from mrcnn_tf.errors import run_command  # noqa: E402


def configurations(preset_name, variants):
    """``{name: (settings, Config)}``: the preset as ``"preset"`` and each ``(name, settings...)`` variant."""
    out = {"preset": ((), config.Config.from_preset(preset_name))}
    for name, *settings in variants:
        if name in out:
            raise config.ConfigError(f"variant name {name!r} given twice")
        out[name] = (tuple(settings), config.Config.from_preset(preset_name).with_settings(settings))
    return out


def run(args, measure=budget.measure_step_seconds):
    """Time every configuration ``args.rounds`` times in turns; returns (and prints) the summary."""
    import numpy as np

    configs = configurations(args.preset, args.variant)
    seconds = {name: [] for name in configs}
    for round_index in range(args.rounds):
        for name, (_, train_config) in configs.items():
            seconds[name].append(round(measure(train_config, args.data), 4))
            print(f"round {round_index + 1}: {name} {seconds[name][-1]:.3f} s a step", file=sys.stderr)
    medians = {name: float(np.median(times)) for name, times in seconds.items()}
    summary = {"preset": args.preset, "data": args.data, "minutes": args.minutes, "margin": budget.SCHEDULE_MARGIN,
               "configurations": {}}
    for name, (settings, train_config) in configs.items():
        planned = budget.fit_schedule(train_config, args.minutes, medians[name]).train
        summary["configurations"][name] = {
            "settings": list(settings), "step_seconds": seconds[name], "median_step_seconds": round(medians[name], 4),
            "relative_to_preset": round(medians[name] / medians["preset"], 3),
            "steps_in_budget": planned.epochs * planned.steps_per_epoch}
    print(json.dumps(summary))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset root (e.g. an LGG folder)")
    p.add_argument("--preset", choices=sorted(config.PRESETS), default="best")
    p.add_argument("--minutes", type=float, default=75.0, help="the budget to convert into steps")
    p.add_argument("--rounds", type=int, default=3, help="timings of each configuration, in turns")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar=("NAME", "SECTION.KEY=VALUE"),
                   help="a named variant: the preset with these settings changed (repeatable)")
    args = p.parse_args(argv)
    if any(len(v) < 2 for v in args.variant):
        p.error("--variant needs a name and at least one SECTION.KEY=VALUE")
    return run_command(lambda: run(args), None, quiet=True)


if __name__ == "__main__":
    sys.exit(main())

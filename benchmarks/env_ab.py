"""What a TensorFlow environment variable changes: ``speed.py`` with each value, alternating, one process each.

    python benchmarks/env_ab.py --name TF_ENABLE_ONEDNN_OPTS --values 0 1 [--rounds 2] [--steps 4]
                                [--settings torchvision|ours]

TensorFlow reads such variables once, when it is imported (``mrcnn_tf.CPU_ENVIRONMENT`` sets two of them unless
they are set already), so each value needs its own process. Each round runs ``speed.py --no-ours`` once per value
in turn, so that a shared machine's drift hits every value alike. Each run's figures go to stderr; one JSON line
gives each value's median train step and inference (ms) over its runs, and the runs themselves.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

SPEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speed.py")


def run_speed(name, value, steps, settings):
    """``speed.py``'s JSON figures, run in a new process with ``name=value`` in its environment."""
    env = dict(os.environ, **{name: value})
    result = subprocess.run([sys.executable, SPEED, "--steps", str(steps), "--settings", settings, "--no-ours"],
                            env=env, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(f"speed.py failed with {name}={value} (exit code {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def interleave(name, values, rounds, steps, settings, run=run_speed):
    """Every value's runs, ``rounds`` rounds of one run per value in turn; returns the summary dict."""
    runs = {value: [] for value in values}
    for round_index in range(rounds):
        for value in values:
            figures = run(name, value, steps, settings)
            runs[value].append({"train_step_ms": figures["train_step_ms"], "inference_ms": figures["inference_ms"]})
            print(f"round {round_index + 1}, {name}={value}: {json.dumps(runs[value][-1])}", file=sys.stderr)
    medians = {value: {key: statistics.median(r[key] for r in value_runs)
                       for key in ("train_step_ms", "inference_ms")}
               for value, value_runs in runs.items()}
    return {"name": name, "settings": settings, "rounds": rounds, "steps": steps, "median": medians, "runs": runs}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="the environment variable")
    p.add_argument("--values", nargs="+", required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=4, help="timed steps of each run (speed.py --steps)")
    p.add_argument("--settings", choices=("torchvision", "ours"), default="torchvision")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        p.error("--rounds and --steps must be at least 1")
    print(json.dumps(interleave(args.name, args.values, args.rounds, args.steps, args.settings)))


if __name__ == "__main__":
    main()

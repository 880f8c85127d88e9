"""The ratios of ``side_by_side.sh``: reads its tagged lines from stdin and prints them back as JSON lines.

Input, one line each: ``round N``, then ``peer {json}``, ``group_norm {json}`` and ``frozen_bn {json}`` (the JSON
lines of ``peer_torchvision.sh`` and ``speed.py``) in any order. Output: every JSON line, each round's ratios of
our times to torchvision's (``{"round": N, "ratio_to_torchvision": "group_norm", "train_step": ..., "inference":
...}``) and, with two rounds or more, the median of the rounds' ratios (``"round": "median"``).
"""
import json
import statistics
import sys

NORMS = ("group_norm", "frozen_bn")


def read_rounds(lines):
    """``[{"peer": {...}, "group_norm": {...}, "frozen_bn": {...}}, ...]`` in round order."""
    rounds = []
    for line in lines:
        tag, _, payload = line.strip().partition(" ")
        if not tag:
            continue
        if tag == "round":
            rounds.append({})
        elif tag in ("peer",) + NORMS and rounds:
            try:
                rounds[-1][tag] = json.loads(payload)
            except json.JSONDecodeError:
                raise ValueError(f"side_by_side_ratios: round {len(rounds)}: {tag} gave no JSON line: "
                                 f"{payload!r}") from None
        else:
            raise ValueError(f"side_by_side_ratios: unexpected line {line.strip()!r}")
    if not rounds:
        raise ValueError("side_by_side_ratios: no round in the input")
    missing = [(i + 1, key) for i, run in enumerate(rounds) for key in ("peer",) + NORMS if key not in run]
    if missing:
        raise ValueError(f"side_by_side_ratios: no figures for (round, run) {missing}")
    return rounds


def ratios(run):
    """``{norm: (train step ratio, inference ratio)}`` of one round."""
    peer = run["peer"]
    return {norm: (run[norm]["train_step_ms"] / peer["train_step_ms"], run[norm]["inference_ms"] / peer["inference_ms"])
            for norm in NORMS}


def report(rounds):
    """The output lines (strings) for ``rounds``."""
    out = []
    for number, run in enumerate(rounds, start=1):
        out += [json.dumps(run[key]) for key in ("peer",) + NORMS]
        out += [json.dumps({"round": number, "ratio_to_torchvision": norm, "train_step": round(train, 3),
                            "inference": round(inference, 3)}) for norm, (train, inference) in ratios(run).items()]
    if len(rounds) > 1:
        per_round = [ratios(run) for run in rounds]
        for norm in NORMS:
            train = statistics.median(r[norm][0] for r in per_round)
            inference = statistics.median(r[norm][1] for r in per_round)
            out.append(json.dumps({"round": "median", "ratio_to_torchvision": norm, "train_step": round(train, 3),
                                   "inference": round(inference, 3)}))
    return out


def main():
    print("\n".join(report(read_rounds(sys.stdin))))


if __name__ == "__main__":
    main()

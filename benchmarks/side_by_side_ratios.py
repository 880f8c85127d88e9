"""The ratios of ``side_by_side.sh``: reads its tagged lines from stdin and prints them back as JSON lines.

Input, one line each: ``round N``, then ``peer {json}``, ``group_norm {json}`` and ``frozen_bn {json}`` (the JSON
lines of ``peer_torchvision.sh`` and ``speed.py``) in any order. Output: every JSON line, each round's ratios of
our times to torchvision's (``{"round": N, "ratio_to_torchvision": "group_norm", "train_step": ..., "inference":
...}``) and, with two rounds or more, the median of the rounds' ratios (``"round": "median"``). Where ``speed.py``
gave its GFLOPs and the machine's GEMM rate, each round's line also says what the issue's train-step target
(``TRAIN_TARGET`` x torchvision's time) asks of that step: ``train_gflop_per_s_at_target`` (its GFLOPs in that
time) and that rate's share of the GEMM rate measured in the same run, ``target_share_of_gemm``.
"""
import json
import statistics
import sys

NORMS = ("group_norm", "frozen_bn")
TRAIN_TARGET = 0.6  # the target: a train step in at most 0.6x torchvision's time


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


def target_rate(ours, peer):
    """``{"train_gflop_per_s_at_target": ..., "target_share_of_gemm": ...}``: the GFLOP/s ``ours`` (one ``speed.py``
    line) would need for a train step of ``TRAIN_TARGET`` x the ``peer``'s, and its share of ``ours``' measured GEMM
    rate; empty where ``ours`` lacks those figures or one of them is not a positive number."""
    figures = (ours.get("train_gflop"), ours.get("gemm_gflop_per_s"), peer.get("train_step_ms"))
    if not all(isinstance(value, (int, float)) and value > 0 for value in figures):
        return {}
    needed = ours["train_gflop"] / (TRAIN_TARGET * peer["train_step_ms"]) * 1000.0
    return {"train_gflop_per_s_at_target": round(needed, 1),
            "target_share_of_gemm": round(needed / ours["gemm_gflop_per_s"], 3)}


def report(rounds):
    """The output lines (strings) for ``rounds``."""
    out = []
    for number, run in enumerate(rounds, start=1):
        out += [json.dumps(run[key]) for key in ("peer",) + NORMS]
        out += [json.dumps({"round": number, "ratio_to_torchvision": norm, "train_step": round(train, 3),
                            "inference": round(inference, 3), **target_rate(run[norm], run["peer"])})
                for norm, (train, inference) in ratios(run).items()]
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

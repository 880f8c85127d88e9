"""benchmarks/side_by_side.sh and side_by_side_ratios.py: rounds, their order, each round's ratios and the median."""
import json
import os
import subprocess
import sys

import pytest
from conftest import load_benchmark

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "benchmarks", "side_by_side.sh")


def _lines(peer_ms, ours_ms, bn_ms):
    """One round's tagged lines, each time a (train, inference) pair."""
    run = {"peer": peer_ms, "group_norm": ours_ms, "frozen_bn": bn_ms}
    return [f"{tag} " + json.dumps({"train_step_ms": train, "inference_ms": inference})
            for tag, (train, inference) in run.items()]


def test_each_round_gives_its_ratios_and_the_median_of_three_rounds():
    ratios = load_benchmark("side_by_side_ratios")
    lines = (["round 1"] + _lines((2000, 1000), (1000, 700), (900, 600))
             + ["round 2"] + _lines((1000, 1000), (800, 800), (700, 500))
             + ["round 3"] + _lines((4000, 1000), (1200, 600), (1000, 900)))
    out = [json.loads(line) for line in ratios.report(ratios.read_rounds(lines))]
    by_round = {(o["round"], o["ratio_to_torchvision"]): (o["train_step"], o["inference"])
                for o in out if "ratio_to_torchvision" in o}
    assert by_round[(1, "group_norm")] == (0.5, 0.7)
    assert by_round[(2, "frozen_bn")] == (0.7, 0.5)
    assert by_round[(3, "group_norm")] == (0.3, 0.6)
    # medians of each column on its own: train 0.5, 0.8, 0.3 -> 0.5; inference 0.7, 0.8, 0.6 -> 0.7
    assert by_round[("median", "group_norm")] == (0.5, 0.7)
    assert by_round[("median", "frozen_bn")] == (0.45, 0.6)
    assert sum("train_step_ms" in o for o in out) == 9  # every measurement is printed back


def test_each_ratio_line_says_what_the_train_target_asks_of_the_machine_where_the_figures_are_there():
    ratios = load_benchmark("side_by_side_ratios")
    peer = {"train_step_ms": 2000.0, "inference_ms": 1000.0}
    ours = {"train_step_ms": 1300.0, "inference_ms": 700.0, "train_gflop": 120.0, "gemm_gflop_per_s": 125.0}
    # 0.6 x 2000 ms = 1.2 s for 120 GFLOP: 100 GFLOP/s, 0.8 of the 125 GFLOP/s measured
    assert ratios.target_rate(ours, peer) == {"train_gflop_per_s_at_target": 100.0, "target_share_of_gemm": 0.8}
    assert ratios.target_rate({"train_step_ms": 1300.0, "train_gflop": 120.0}, peer) == {}
    for rate in (0, None, -1.0):  # a failed or absent measurement gives no figure, not an error
        assert ratios.target_rate({**ours, "gemm_gflop_per_s": rate}, peer) == {}
    lines = ["round 1", "peer " + json.dumps(peer), "group_norm " + json.dumps(ours),
             "frozen_bn " + json.dumps({"train_step_ms": 1000.0, "inference_ms": 600.0})]
    out = {o["ratio_to_torchvision"]: o for o in map(json.loads, ratios.report(ratios.read_rounds(lines)))
           if "ratio_to_torchvision" in o}
    assert out["group_norm"]["target_share_of_gemm"] == 0.8
    assert "target_share_of_gemm" not in out["frozen_bn"]


def test_one_round_has_no_median_and_a_missing_or_failed_run_is_named():
    ratios = load_benchmark("side_by_side_ratios")
    out = ratios.report(ratios.read_rounds(["round 1"] + _lines((2000, 1000), (1000, 700), (900, 600))))
    assert not any('"median"' in line for line in out)
    with pytest.raises(ValueError, match=r"\(2, 'frozen_bn'\)"):
        one = _lines((1, 1), (1, 1), (1, 1))
        ratios.read_rounds(["round 1"] + one + ["round 2"] + one[:2])
    with pytest.raises(ValueError, match="round 1: frozen_bn gave no JSON line"):
        ratios.read_rounds(["round 1"] + one[:2] + ["frozen_bn "])
    with pytest.raises(ValueError, match="no round"):
        ratios.read_rounds([])


PEER = """
n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}
echo "peer $*" >> {log}
if ((n == 0)); then echo '{{"train_step_ms": 2000, "inference_ms": 1000}}'; else
  echo '{{"train_step_ms": 1000, "inference_ms": 1000}}'; fi
"""
SPEED = """
import json, sys
norm = "bn" if "frozen_bn" in sys.argv else "gn"
open({log!r}, "a").write(norm + " " + " ".join(sys.argv[1:]) + "\\n")
if norm in {fail!r}:
    sys.exit(1)
print(json.dumps({{"train_step_ms": 1000 if norm == "gn" else 800, "inference_ms": 600 if norm == "gn" else 500}}))
"""


def _run_script(tmp_path, args, fail=(), peer_script=None):
    """``side_by_side.sh args`` with fake scripts for torchvision's and ``speed.py``, which log their arguments:
    ``(completed process, logged lines)``."""
    log, bench = tmp_path / "order.log", tmp_path / "benchmarks"
    bench.mkdir()
    benchmarks = os.path.dirname(SCRIPT)
    for name in ("side_by_side.sh", "side_by_side_ratios.py"):
        (bench / name).write_text(open(os.path.join(benchmarks, name)).read())
    (bench / "speed.py").write_text(SPEED.format(log=str(log), fail=tuple(fail)))
    peer = tmp_path / "peer.sh"
    peer.write_text(PEER.format(log=log, count=tmp_path / "count"))
    env = {**os.environ, "PYTHON": sys.executable, "PEER_SCRIPT": peer_script or str(peer)}
    result = subprocess.run(["bash", str(bench / "side_by_side.sh")] + args, env=env, capture_output=True, text=True)
    return result, log.read_text().splitlines() if log.exists() else []


def test_the_script_alternates_who_runs_first_and_passes_the_other_flags_on(tmp_path):
    result, logged = _run_script(tmp_path, ["--rounds", "2", "--steps", "1"])
    assert result.returncode == 0, result.stderr
    common = "--image-size 256 --batch-size 1"
    assert logged == [f"peer {common} --steps 1", f"gn {common} --steps 1",
                      f"bn {common} --norm frozen_bn --no-ours --steps 1",
                      f"gn {common} --no-ours --steps 1", f"bn {common} --norm frozen_bn --no-ours --steps 1",
                      f"peer {common} --steps 1"]
    out = [json.loads(line) for line in result.stdout.splitlines()]
    ratios = {(o["round"], o["ratio_to_torchvision"]): (o["train_step"], o["inference"])
              for o in out if "ratio_to_torchvision" in o}
    # torchvision 2000 / 1000 ms in round 1, 1000 / 1000 in round 2; ours 1000 / 600 (GroupNorm), 800 / 500 (BN)
    assert ratios[(1, "group_norm")] == (0.5, 0.6) and ratios[(2, "group_norm")] == (1.0, 0.6)
    assert ratios[("median", "group_norm")] == (0.75, 0.6)
    assert ratios[("median", "frozen_bn")] == (0.6, 0.5)


def test_the_script_stops_at_a_failed_run(tmp_path):
    result, logged = _run_script(tmp_path, ["--rounds", "2"], fail=("bn",))
    assert result.returncode != 0
    assert [line.split()[0] for line in logged] == ["peer", "gn", "bn"]  # nothing ran after the failure


@pytest.mark.parametrize("rounds", ["0", "two", None])
def test_the_script_refuses_a_bad_round_count(tmp_path, rounds):
    result, logged = _run_script(tmp_path, ["--rounds"] + ([rounds] if rounds else []))
    assert result.returncode == 2 and "--rounds takes a positive whole number" in result.stderr
    assert logged == []


def test_the_script_names_a_missing_torchvision_script_before_running_anything(tmp_path):
    missing = str(tmp_path / "no_peer.sh")
    result, logged = _run_script(tmp_path, ["--steps", "1"], peer_script=missing)
    assert result.returncode == 2 and missing in result.stderr and "PEER_SCRIPT" in result.stderr
    assert logged == []

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


def test_one_round_has_no_median_and_a_missing_run_is_named():
    ratios = load_benchmark("side_by_side_ratios")
    out = ratios.report(ratios.read_rounds(["round 1"] + _lines((2000, 1000), (1000, 700), (900, 600))))
    assert not any('"median"' in line for line in out)
    with pytest.raises(ValueError, match=r"\(2, 'frozen_bn'\)"):
        one = _lines((1, 1), (1, 1), (1, 1))
        ratios.read_rounds(["round 1"] + one + ["round 2"] + one[:2])


def _fake(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def test_the_script_alternates_who_runs_first(tmp_path):
    """With fake scripts standing in for torchvision's and ``speed.py``, the run order is written to a log."""
    log = tmp_path / "order.log"
    figures = '{"train_step_ms": 2000, "inference_ms": 1000}'
    peer = _fake(tmp_path, "peer.sh", f"echo peer >> {log}\necho '{figures}'\n")
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "side_by_side.sh").write_text(open(SCRIPT).read())
    (bench / "side_by_side_ratios.py").write_text(open(os.path.join(os.path.dirname(SCRIPT),
                                                                    "side_by_side_ratios.py")).read())
    (bench / "speed.py").write_text(
        "import json, sys\n"
        "run = 'bn' if 'frozen_bn' in sys.argv else 'gn ' + str('--no-ours' in sys.argv)\n"
        f"open({str(log)!r}, 'a').write(run + '\\n')\n"
        "print(json.dumps({'train_step_ms': 1000, 'inference_ms': 600}))\n")
    env = {**os.environ, "PYTHON": sys.executable, "PEER_SCRIPT": peer}
    result = subprocess.run(["bash", str(bench / "side_by_side.sh"), "--rounds", "2", "--steps", "1"], env=env,
                            capture_output=True, text=True, check=True)
    assert log.read_text().split("\n")[:-1] == ["peer", "gn False", "bn", "gn True", "bn", "peer"]
    medians = [json.loads(line) for line in result.stdout.splitlines() if '"median"' in line]
    assert [(m["train_step"], m["inference"]) for m in medians] == [(0.5, 0.6), (0.5, 0.6)]

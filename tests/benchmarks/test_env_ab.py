"""benchmarks/env_ab.py: values alternate round by round, and each value's medians come from its own runs."""
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def env_ab():
    return load_benchmark("env_ab")


def test_values_alternate_and_medians_are_per_value(env_ab):
    calls = []
    figures = {"0": [(100.0, 50.0), (300.0, 70.0), (200.0, 60.0)], "1": [(10.0, 5.0), (30.0, 9.0), (20.0, 7.0)]}

    def fake_run(name, value, steps, settings):
        calls.append((name, value, steps, settings))
        train, infer = figures[value][sum(v == value for _, v, _, _ in calls) - 1]
        return {"train_step_ms": train, "inference_ms": infer, "other": 1}

    summary = env_ab.interleave("TF_X", ["0", "1"], 3, 4, "torchvision", run=fake_run)
    assert [value for _, value, _, _ in calls] == ["0", "1", "0", "1", "0", "1"]
    assert {(name, steps, settings) for name, _, steps, settings in calls} == {("TF_X", 4, "torchvision")}
    assert summary["median"] == {"0": {"train_step_ms": 200.0, "inference_ms": 60.0},
                                 "1": {"train_step_ms": 20.0, "inference_ms": 7.0}}
    assert summary["runs"]["1"][1] == {"train_step_ms": 30.0, "inference_ms": 9.0}


def test_run_speed_sets_the_variable_for_its_process(env_ab, monkeypatch):
    seen = {}

    class Done:
        returncode = 0
        stdout = 'log line\n{"train_step_ms": 1.0, "inference_ms": 2.0}\n'

    def fake_subprocess_run(command, env, **kwargs):
        seen.update(command=command, value=env["TF_X"])
        return Done()

    monkeypatch.setattr(env_ab.subprocess, "run", fake_subprocess_run)
    assert env_ab.run_speed("TF_X", "0", 3, "ours") == {"train_step_ms": 1.0, "inference_ms": 2.0}
    assert seen["value"] == "0" and seen["command"][1:] == [env_ab.SPEED, "--steps", "3", "--settings", "ours",
                                                           "--no-ours"]

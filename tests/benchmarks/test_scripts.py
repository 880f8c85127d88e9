"""The benchmark scripts run as scripts from any folder: each finds mrcnn_tf through the installed package and its
neighbour scripts through its own folder (no ``sys.path`` edit), and imports mrcnn_tf before TensorFlow (it sets
TensorFlow's CPU environment, which TF reads once, when it loads)."""
import ast
import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks")
SCRIPTS = ("speed", "profile_stages", "serving", "accuracy", "step_cost", "side_by_side_ratios")


def _source(name):
    with open(os.path.join(BENCHMARKS, f"{name}.py")) as f:
        return f.read()


def _imported_modules(name):
    """The top-level modules ``benchmarks/<name>.py`` imports at module level, in order."""
    modules = []
    for node in ast.parse(_source(name)).body:
        if isinstance(node, ast.Import):
            modules += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_script_edits_the_import_path(name):
    assert "sys.path" not in _source(name)


@pytest.mark.parametrize("name", ["speed", "profile_stages", "serving", "accuracy", "step_cost"])
def test_mrcnn_tf_is_the_first_package_a_script_imports(name):
    packages = [module for module in _imported_modules(name) if module not in sys.stdlib_module_names]
    assert packages[0] == "mrcnn_tf"


def test_only_the_kept_benchmarks_are_left():
    scripts = {entry for entry in os.listdir(BENCHMARKS) if entry.endswith((".py", ".sh"))}
    assert scripts == {f"{name}.py" for name in SCRIPTS} | {"side_by_side.sh"}


@pytest.mark.parametrize("name, usage", [
    ("accuracy", "--preset {best,paper}"), ("speed", "--settings {torchvision,ours}"),
    ("profile_stages", "--settings {torchvision,ours}"), ("serving", "--run RUN"),
])
def test_each_script_starts_from_another_folder(name, usage, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, os.path.join(BENCHMARKS, f"{name}.py"), "--help"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert usage in result.stdout

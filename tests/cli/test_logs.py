"""mrcnn_tf.cli.logs: TensorFlow's native log lines hidden from a command's stderr by default, shown with -v;
the command's own lines and tracebacks pass unchanged."""
import os
import subprocess
import sys

from mrcnn_tf.cli import logs

TF_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796414242.892963   18221 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796414248.571939   18221 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "W0000 00:00:1796414248.571939   18221 op_level_cost_estimator.cc:699] Error in PredictCost() for the op",
]
# A child that sets up its logging as a command does, then writes TensorFlow-like lines and its own to fd 2.
CHILD = """
import argparse, os, sys
from mrcnn_tf.cli import logs
parser = argparse.ArgumentParser()
logs.add_flags(parser)
logs.configure(parser.parse_args(sys.argv[1:]))
for line in {lines!r}:
    os.write(2, (line + "\\n").encode())
print("error: the command's own message", file=sys.stderr)
"""


def run_child(*flags):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", CHILD.format(lines=TF_LINES), *flags], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_native_log_lines_are_hidden_and_the_commands_own_pass():
    assert run_child() == ["error: the command's own message"]
    assert run_child("-q") == ["error: the command's own message"]


def test_verbose_shows_everything():
    assert run_child("-v") == TF_LINES + ["error: the command's own message"]


def test_the_pattern_matches_tensorflows_lines_only():
    for line in TF_LINES:
        assert logs.NATIVE_LOG_LINE.match(line.encode())
    for line in ("error: /data/x.tif: file not found", "Epoch 1/2", "I0000 is not a log line",
                 "Traceback (most recent call last):"):
        assert not logs.NATIVE_LOG_LINE.match(line.encode())


def test_a_real_tensorflow_start_prints_nothing(tmp_path):
    code = "from mrcnn_tf.cli import logs; import argparse; logs.configure(argparse.Namespace()); " \
           "import tensorflow as tf; tf.config.list_physical_devices('GPU'); tf.constant(1) + 1"
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr

"""Importing mrcnn_tf sets TensorFlow's CPU environment before TensorFlow loads, and leaves a user's own values."""
import os
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = ("import os, mrcnn_tf.model; from tensorflow.python.util import _pywrap_util_port as port; "
         "print(os.environ['TF_CPU_ALLOCATOR_USE_BFC'], os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())")


def run(extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPU_ALLOCATOR_USE_BFC", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(extra_env, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_sets_the_cpu_environment_that_tensorflow_then_uses():
    assert run({}) == ["true", "1", "True"]  # oneDNN really on, whatever this CPU's TF default


def test_keeps_what_the_user_set():
    assert run({"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPU_ALLOCATOR_USE_BFC": "false"}) == ["false", "0", "False"]

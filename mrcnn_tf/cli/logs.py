"""How much a command says: TensorFlow's own log lines (CUDA probing, oneDNN, cost-estimator warnings) hidden by
default, shown with ``-v``; ``-q`` leaves only errors. A missing GPU is not an error on a CPU machine.

TensorFlow 2.21 writes its C++ log lines through absl, to the process's stderr, and most of them before
``TF_CPP_MIN_LOG_LEVEL`` has any say ("All log messages before absl::InitializeLog() is called are written to
STDERR"). So a command's stderr (file descriptor 2) goes through a filter that drops lines in that log format
and passes everything else (the command's own messages, Python tracebacks) unchanged and in order.
:func:`configure` must run before TensorFlow is imported.
"""
import atexit
import logging
import os
import re
import sys
import threading
import warnings

# "I0000 00:00:1796414242.892963   18221 port.cc:153] ..." and absl's line about it.
NATIVE_LOG_LINE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w.\-]+:\d+\] |WARNING: All log messages "
                             rb"before absl::InitializeLog\(\) is called)")

QUIET, NORMAL, VERBOSE = 0, 1, 2


def add_flags(parser):
    """``-q`` / ``--quiet`` and ``-v`` / ``--verbose`` on an ``argparse`` parser."""
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    loudness.add_argument("-v", "--verbose", action="store_true", help="also print TensorFlow's own log lines")


def configure(args):
    """Set the logging of TensorFlow, absl and Python warnings for ``args`` (from :func:`add_flags`); returns
    :data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE`."""
    level = QUIET if getattr(args, "quiet", False) else VERBOSE if getattr(args, "verbose", False) else NORMAL
    if level == VERBOSE:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return level
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ lines: info, warnings and CUDA's missing-driver errors
    logging.getLogger("absl").setLevel(logging.ERROR)  # Python-side TensorFlow warnings (SavedModel loading)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")
    # Only where stderr is the process's own: a test runner that captures it keeps its own plumbing.
    if sys.stderr is sys.__stderr__:
        filter_native_log_lines()
    return level


def filter_native_log_lines():
    """From now until the process exits, drop the lines of TensorFlow's native log format from file descriptor 2
    (see the module doc); every other line goes on to the real stderr."""
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not NATIVE_LOG_LINE.match(line):
                    os.write(real_stderr, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # the pipe's last write end closes: the pump reads to its end and stops
        thread.join(timeout=5)

    atexit.register(restore)

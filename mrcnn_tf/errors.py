"""One error type per kind of user mistake, raised where the mistake is seen, and how commands report them."""
import sys


class MrcnnError(Exception):
    """Base class of the package's user-facing errors."""


class ConfigError(MrcnnError, ValueError):
    """An invalid option, or weights that cannot be loaded."""


class DataError(MrcnnError, ValueError):
    """A data file that is missing, unreadable or inconsistent; the message names the file."""


class TrainingDiverged(MrcnnError, RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class CheckpointFailed(MrcnnError, OSError):
    """A checkpoint could not be written (a full disk, say); the previous one is kept."""


class TrainingInterrupted(MrcnnError):
    """SIGINT or SIGTERM stopped training after a checkpoint at the current step. ``exit_code``: 128 + signal."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def run_command(action, done_message, quiet=False):
    """Run ``action()`` for a command-line tool: a user mistake (:class:`MrcnnError`) prints ``error: ...`` to
    stderr and gives exit code 2, without a traceback; success prints ``done_message(result)`` (unless ``quiet``)
    and gives 0."""
    try:
        result = action()
    except MrcnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt:  # Ctrl-C outside training's own handling: one line, not TensorFlow's traceback
        print("interrupted", file=sys.stderr)
        return 130
    if not quiet:
        print(done_message(result))
    return 0

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


def run_command(action, done_message):
    """Run ``action()`` for a command-line tool: a user mistake (:class:`MrcnnError`) prints ``error: ...`` to
    stderr and gives exit code 2, without a traceback; success prints ``done_message(result)`` and gives 0."""
    try:
        result = action()
    except MrcnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(done_message(result))
    return 0

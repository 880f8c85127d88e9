"""One error type per kind of user mistake, raised where the mistake is seen."""


class MrcnnError(Exception):
    """Base class of the package's user-facing errors."""


class ConfigError(MrcnnError, ValueError):
    """An invalid option, or weights that cannot be loaded."""


class DataError(MrcnnError, ValueError):
    """A data file that is missing, unreadable or inconsistent; the message names the file."""


class TrainingDiverged(MrcnnError, RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""

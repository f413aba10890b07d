"""Every exception ganrun raises on purpose. A GanrunError means "the user must fix something":
the CLI prints its one-sentence message and exits 2 (1 for TrainingDiverged)."""


class GanrunError(Exception):
    """A problem the user can fix; the message is one sentence that names the fix."""


class ConfigError(GanrunError):
    """A bad configuration value or combination."""


class DataError(GanrunError):
    """A missing, unreadable or malformed data file."""


class TrainingDiverged(GanrunError):
    """A loss or weight became NaN or infinite (the CLI exits 1: the config was valid)."""


class TrainingStopped(Exception):
    """Training stopped on a signal after writing a checkpoint. Not a GanrunError: the CLI
    exits with `exit_code` (128 + the signal number, the shell's convention), not 2."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum

    def __reduce__(self):
        # A sweep job's exception travels back to the sweep's process by pickle (joblib,
        # submitit); the default would call TrainingStopped(message) and fail to unpickle.
        return type(self), (self.args[0], self.exit_code - 128)

"""Errors that mean "the user must fix something": the CLI prints the message and exits 2."""


class GanrunError(Exception):
    """A problem the user can fix; the message is one sentence that names the fix."""


class ConfigError(GanrunError):
    """A bad configuration value or combination."""


class DataError(GanrunError):
    """A missing, unreadable or malformed data file."""

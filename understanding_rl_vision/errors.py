"""Errors caused by the user's input.

The CLI turns any :class:`UserError` into one line on stderr and exit status 2, never a
traceback. Everything else is a bug and is allowed to surface as one.
"""


class UserError(Exception):
    """Bad input: a missing file, an unknown name, a shape that does not fit."""


class UnknownEnvError(UserError):
    """An environment id that none of the supported families knows."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt, truncated, or not in our format."""


class ObservationShapeError(UserError):
    """Observations whose shape does not fit the agent's architecture."""


class ConfigError(UserError, ValueError):
    """A configuration value out of its valid range."""


def first_line(exc: BaseException) -> str:
    """A third-party exception as one line (its first), or its type's name if it has no text."""
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__

"""User-facing errors.

Every error a user can cause (bad config value, unknown env id, corrupt data
or checkpoint, out-of-range action) derives from :class:`SimlabError`; the CLI
prints its message on one line and exits with code 2, without a traceback.
"""

from __future__ import annotations

from gymnasium.error import ResetNeeded


class SimlabError(Exception):
    """Base class of errors caused by user input; the CLI maps it to exit code 2."""


class ConfigError(SimlabError, ValueError):
    """A configuration value, preset, override or split definition is invalid."""


class DatasetError(SimlabError):
    """A dataset file is missing, truncated, corrupt or of the wrong format."""


class CheckpointError(SimlabError):
    """A checkpoint or saved model is missing, truncated or incompatible."""


class ActionError(SimlabError, ValueError):
    """An action is NaN, of the wrong shape, or outside the action space."""


class EnvIdError(SimlabError, KeyError):
    """An env id is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ResetNeededError(SimlabError, ResetNeeded):
    """An env was stepped (or rendered) before its first ``reset()``.

    Also a ``gymnasium.error.ResetNeeded``, so code written for gymnasium's
    own order check catches it too.
    """


class DivergedError(SimlabError):
    """Training produced a NaN or infinite loss (or weights); it stopped before saving them."""

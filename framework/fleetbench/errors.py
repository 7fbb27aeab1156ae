"""A small, flat error hierarchy.

`UserError` and its subclasses are mistakes in input (config, names, files). The CLI prints their message as one line,
without a traceback, and exits with code 2. Anything else is a bug or an infrastructure failure.
"""

from __future__ import annotations

from collections.abc import Iterable


class FleetbenchError(Exception):
    """Base of every error fleetbench raises on purpose."""


class UserError(FleetbenchError):
    """Bad input: the message names the key or file and, where there are any, the valid choices."""

    exit_code = 2


class ConfigError(UserError):
    """The composed configuration is invalid."""


class UnknownNameError(UserError):
    """A model spelling that the naming policy cannot resolve."""


class PluginNotFoundError(UserError):
    """The requested plugin is not installed in its entry-point group."""


class PluginLoadError(FleetbenchError):
    """An installed plugin failed to import or to construct."""


class StorageError(FleetbenchError):
    """The storage back end failed or holds data it cannot read."""


class Interrupted(FleetbenchError):
    """The run was cancelled (Ctrl-C / SIGTERM); finished results were kept."""

    exit_code = 130


def choices_text(choices: Iterable[str]) -> str:
    """Render valid choices for an error message: sorted, comma-separated, or '(none)'."""
    items = sorted(set(choices))
    return ", ".join(items) if items else "(none)"


class InfraFailure(FleetbenchError):
    """A request could not be completed (timeout, exhausted retries, auth, empty reply): the unit is not done.

    Raised by the scheduler's `Chat`; never a model error.
    """

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(f"{status}: {detail}" if detail else status)
        self.status = status
        self.detail = detail


class LaneLost(InfraFailure):
    """The episode's lane cannot carry it on (parked, stopped, a request that timed out, retries used up): the
    scheduler starts the episode again on a healthy lane of the same model instead of recording it as not done."""


class ClaimGone(InfraFailure):
    """The unit is no longer this run's: its claim lapsed while it waited to start (the worker stood still past its
    lease) and another worker took it over. Nothing of it is stored by this run."""

    def __init__(self) -> None:
        super().__init__("claim_gone", "another worker took the unit over while it waited to start")


DEADLINE_EXIT = 124
"""Exit code of a run stopped by `scheduler.deadline_s` (as `timeout(1)`): finished results were kept; run again to
resume."""

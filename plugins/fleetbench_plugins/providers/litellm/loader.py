"""Importing litellm: lazily, offline, quiet, and never leaking a key through its log records.

litellm takes seconds to import, so only a run that uses it pays for that, and it starts in a background thread as
soon as the provider is constructed (planning and the database migration overlap with it). Before the import,
`LITELLM_LOCAL_MODEL_COST_MAP` makes litellm read its bundled cost map instead of fetching one from the internet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import warnings
from concurrent.futures import Future
from types import ModuleType
from typing import Any

from fleetbench.errors import PluginLoadError
from fleetbench.gcpause import collector_paused
from fleetbench.secrets import redact_text, remove_secrets

LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router", "litellm", "httpx", "openai")

_lock = threading.Lock()
_import: Future[ModuleType] | None = None
"""The one import of litellm, started by `prefetch` (or the first `litellm()` / `loaded()`): its module, or the
`PluginLoadError` that ended it. Never started twice: a failed import that took a minute is not waited for again."""


class SecretFilter(logging.Filter):
    """Removes known keys (and every URL secret) from the log records of litellm and its HTTP clients.

    Nothing of litellm should log a key, but its debug lines quote request headers and URLs; this filter makes sure
    that a future version's log line cannot carry one into `fleetbench.log`."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(remove_secrets(record.getMessage(), self.secrets)), None
        return True


secret_filter = SecretFilter()


def litellm() -> ModuleType:
    """The litellm module, imported once (thread-safe), offline and quiet; `PluginLoadError` if it cannot be."""
    return _started().result()


async def loaded() -> ModuleType:
    """The litellm module, awaited without holding a thread: while it still imports, the event loop goes on
    (signals, heartbeats), and a run stopped meanwhile ends without waiting for the import to finish."""
    started = _started()
    if started.done():
        # Every request asks: wrapping a finished concurrent future still hands its result over through
        # `call_soon_threadsafe`, a write to the loop's self-pipe and one more loop iteration per request.
        return started.result()
    return await asyncio.wrap_future(started)


def prefetch() -> None:
    """Start importing litellm in a daemon thread (the first request waits for it if it has not finished)."""
    _started()


def _started() -> Future[ModuleType]:
    global _import
    with _lock:
        if _import is None:
            _import = Future()
            threading.Thread(target=_import_into, args=(_import,), name="litellm-import", daemon=True).start()
        return _import


def _import_into(future: Future[ModuleType]) -> None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    try:
        with collector_paused():  # a third of the import's time is the collector scanning what it builds
            import litellm as module

        _configure(module)
    except Exception as exc:  # whatever broke the import: the run stops with one line, not a traceback per request
        future.set_exception(
            PluginLoadError(
                redact_text(f"provider 'litellm': litellm could not be imported: {type(exc).__name__}: {exc}")
            )
        )
        return
    future.set_result(module)


UNAWAITED_HANDLER = r"coroutine '\w+\.a(sync_)?completion' was never awaited"
"""The warning Python prints when a request is cancelled (timed out, or the run stopping) while litellm's
`acompletion` runs its synchronous part in a thread: that part still returns its handler's coroutine, which nothing
awaits any more. Harmless, and litellm's own; it reached the terminal after a stopped worker was continued."""


def _configure(module: Any) -> None:
    """No retries of its own, no "give feedback" banners on stdout, redacted logs, no warning about the coroutines
    of requests cancelled while its thread ran."""
    warnings.filterwarnings("ignore", message=UNAWAITED_HANDLER, category=RuntimeWarning)
    module.suppress_debug_info = True
    module.num_retries = 0
    module.drop_params = False
    for name in LITELLM_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.ERROR))  # its warnings are about itself, not about the run
        if secret_filter not in logger.filters:
            logger.addFilter(secret_filter)

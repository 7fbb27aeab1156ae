"""Durable result writing with group commit.

A worker hands over its result and waits until the transaction holding it has committed, so every acknowledged unit
is on disk before its worker pulls the next one (a SIGKILL loses only in-flight units, which a rerun executes). Results
that arrive while a transaction is running are committed together in the next one, which keeps SQLite fast.
Storage calls run on one dedicated thread so the event loop never blocks on I/O; other storage calls of the run
(heartbeats) go through the same thread, between commits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from fleetbench.interfaces import Storage
from fleetbench.types import CallRecord, UnitResult

Pending = tuple[UnitResult, list[CallRecord], "asyncio.Future[None]"]
OnCommit = Callable[[UnitResult, Sequence[CallRecord]], None]
T = TypeVar("T")


class ResultWriter:
    """Serialises writes to one storage; `submit` returns once the result is committed.

    `on_commit` is called (on the event loop) for every committed result, whether or not its worker is still
    waiting: a worker cancelled by Ctrl-C while its result commits still gets that result counted.
    """

    def __init__(self, storage: Storage, max_batch: int, on_commit: OnCommit | None = None) -> None:
        self._storage = storage
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetbench-writer")
        self._task: asyncio.Task[None] | None = None
        self.committed = 0
        self.newly_completed = 0
        self.transactions = 0
        self._failure: Exception | None = None
        self.cpu_s = 0.0
        """CPU time of the storage thread, read when the writer closes: every storage call of the run that went
        through it (writes, claims, heartbeats), which is most of what fleetbench adds to a call's CPU."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="fleetbench-writer")

    async def submit(self, result: UnitResult, calls: list[CallRecord]) -> None:
        """Queue a result and wait for its commit (a storage failure is raised here, in the worker)."""
        if self._failure is not None:
            raise self._failure
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Marks a failure as seen even when its worker was cancelled meanwhile (the run is stopping): asyncio would
        # otherwise print "Future exception was never retrieved" and the traceback, once per result, at exit.
        future.add_done_callback(_seen)
        self._pending.append((result, calls, future))
        self._wake.set()
        # Shielded: a worker cancelled by Ctrl-C while waiting must not cancel the commit of its finished result.
        await asyncio.shield(future)

    @property
    def thread(self) -> Executor:
        """The thread storage calls run on, for synchronous code that must not block the event loop (claims ahead
        of need, see `ClaimedUnits`): its calls run between commits, like `call`'s."""
        return self._thread

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run another storage call on the writer's thread (never concurrently with a commit)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def close(self) -> None:
        """Commit everything still queued, then stop the writer thread."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        # The thread's own clock, read on it: it runs nothing but storage calls.
        self.cpu_s = await self.call(time.thread_time)
        self._thread.shutdown(wait=True)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                if self._failure is not None:
                    # The run stops on the first failed write: the results queued behind it fail at once with the
                    # same error rather than each waiting for it again (SQLite: its busy timeout, 30 s a batch).
                    _fail(batch, self._failure)
                    continue
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[Pending]) -> None:
        results = [result for result, _, _ in batch]
        calls = [call for _, result_calls, _ in batch for call in result_calls]
        try:
            written = await self.call(self._storage.write, results, calls)
        except Exception as exc:  # handed to every waiting worker: the run stops loudly, nothing is dropped silently
            self._failure = exc
            _fail(batch, exc)
            return
        self.newly_completed += written
        self.transactions += 1
        self.committed += len(batch)
        for result, result_calls, future in batch:
            if self._on_commit is not None:
                self._on_commit(result, result_calls)
            if not future.done():
                future.set_result(None)


def _fail(batch: list[Pending], error: Exception) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(error)


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()

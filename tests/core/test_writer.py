"""The result writer: a worker's `submit` returns only once its result is committed, batches never exceed
`write_batch`, a failed write reaches every waiting worker, and `close()` returns after the last commit.

The storage is the in-memory one (it keeps the storage contract); the subclasses below only add a gate that holds a
write until the test releases it (so results pile up behind a running transaction), or make every write fail.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Sequence
from typing import ClassVar

import pytest

from fleetbench.errors import StorageError
from fleetbench.interfaces import NoOptions, Storage
from fleetbench.runner import run
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.runs import fake_models, fake_run_spec
from fleetbench.testing.units import make_unit
from fleetbench.types import (
    CallRecord,
    CallStatus,
    Catalog,
    Cell,
    Episode,
    Lane,
    Outcome,
    ReportFilter,
    RunRecord,
    UnitResult,
)
from fleetbench.writer import ResultWriter

MODEL = "Fake-Model"
RUN = "run-1"
CELL = Cell("tiny", MODEL, (("word", "alpha"),))
WAIT_S = 5.0
"""Upper bound for anything the writer must finish: a lost result fails the test instead of hanging it."""


def _naming() -> ExactNaming:
    return ExactNaming(NoOptions(), catalog=Catalog(fake_models([MODEL])))


class GatedStorage(MemoryStorage):
    """Holds every write until `gate` is set; records each batch's size and signals `started` when a write begins."""

    def __init__(self, options: object = None, *, naming: ExactNaming) -> None:
        super().__init__(options, naming=naming)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[int] = []

    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        self.started.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("the test never released the write")
        self.batches.append(len(results))
        return super().write(results, calls)


class FailingStorage(MemoryStorage):
    """A storage whose every write fails (a full disk, a lost connection); everything else works."""

    opened: ClassVar[list[FailingStorage]] = []

    def __init__(self, options: object = None, *, naming: ExactNaming) -> None:
        super().__init__(options, naming=naming)
        FailingStorage.opened.append(self)

    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        raise StorageError("disk full")


def _storage(cls: type[MemoryStorage] = GatedStorage) -> MemoryStorage:
    storage = cls(naming=_naming())
    storage.begin_run(RunRecord(RUN, 1000.0, "tiny", (MODEL,), {}, "0.1.0", "test-host"))
    return storage


def _result(index: int, outcome: Outcome = Outcome.SUCCESS, key: str | None = None) -> UnitResult:
    unit = make_unit(key or f"{index:032x}", CELL, index)
    return UnitResult(unit, RUN, MODEL, f"{MODEL}#key0", 1000.0, 0.5, Episode(outcome))


def _call(result: UnitResult, attempt: int) -> CallRecord:
    return CallRecord(result.key, RUN, result.lane_id, result.deployment, "key0", attempt, 1000.0, 0.1, CallStatus.OK)


async def _until_started(storage: GatedStorage) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, storage.started.wait, WAIT_S)


def _stored(storage: Storage, results: Sequence[UnitResult]) -> set[str]:
    return storage.stored_among([result.key for result in results])


# --- a failed write -----------------------------------------------------------------------------------------------


def test_a_failed_write_reaches_every_waiting_worker_and_nothing_counts_as_committed() -> None:
    storage = _storage(FailingStorage)
    committed: list[UnitResult] = []
    writer = ResultWriter(storage, max_batch=2, on_commit=lambda result, calls: committed.append(result))
    results = [_result(i) for i in range(5)]

    async def scenario() -> list[BaseException | None]:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            outcomes = await asyncio.gather(*(writer.submit(r, []) for r in results), return_exceptions=True)
            await writer.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, StorageError) and str(o) == "disk full" for o in outcomes), outcomes
    assert committed == []
    assert (writer.committed, writer.newly_completed, writer.transactions) == (0, 0, 0)
    assert _stored(storage, results) == set()


class GatedFailingStorage(GatedStorage):
    """Holds every write until `gate` is set, then fails it; counts the writes tried."""

    def write(self, results: Sequence[UnitResult], calls: Sequence[CallRecord]) -> int:
        self.started.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("the test never released the write")
        self.batches.append(len(results))
        raise StorageError("database is locked")


def test_after_a_failed_write_the_queued_results_fail_at_once_and_no_failure_goes_unseen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The run stops on the first failed write. The results queued behind it, whose workers the stopping run cancels,
    failed again one batch at a time (on SQLite each after its busy timeout), and asyncio then printed "Future
    exception was never retrieved" with a traceback for each on the terminal. Now they fail at once with the same
    error, none of them unseen, and a result handed over later fails before it is queued."""
    storage = _storage(GatedFailingStorage)
    assert isinstance(storage, GatedFailingStorage)
    writer = ResultWriter(storage, max_batch=1)
    results = [_result(i) for i in range(4)]

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            first = asyncio.ensure_future(writer.submit(results[0], []))
            await _until_started(storage)
            queued = [asyncio.ensure_future(writer.submit(r, [])) for r in results[1:3]]
            await asyncio.sleep(0)
            for waiter in queued:  # the stopping run cancels its other workers
                waiter.cancel()
            storage.gate.set()
            failed = await asyncio.gather(first, return_exceptions=True)
            try:
                await writer.submit(results[3], [])
            except StorageError as late:
                refused: BaseException | None = late
            else:
                refused = None
            await writer.close()
        return failed[0], refused

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        failed, refused = asyncio.run(scenario())
        gc.collect()
    assert isinstance(failed, StorageError) and refused is failed
    assert storage.batches == [1], "one write tried: the queued results were not written again and again"
    assert "never retrieved" not in caplog.text


class _Recorder:
    """A progress view that records every unit it is told about."""

    def __init__(self) -> None:
        self.done: list[tuple[str, Outcome]] = []
        self.stopped = False

    def start(self, lanes: Sequence[Lane], total: int, *_: object) -> None:
        self.total = total

    def unit_done(self, lane: Lane, outcome: Outcome) -> None:
        self.done.append((lane.deployment, outcome))

    def tick(self) -> None:
        return None

    def stop(self) -> None:
        self.stopped = True


def test_a_run_whose_storage_fails_stops_loudly_and_reports_nothing_stored() -> None:
    FailingStorage.opened.clear()
    progress = _Recorder()
    with pytest.raises(StorageError, match="disk full"):
        run(fake_run_spec(FailingStorage, instances=3), progress=progress)
    (storage,) = FailingStorage.opened
    (record,) = storage.runs()
    assert record["status"] == "failed"
    assert record["executed_units"] == 0
    assert progress.done == [] and progress.stopped
    assert progress.total == 6  # two cells of three units were missing, none of them is reported done


def test_a_run_on_a_working_storage_commits_every_unit_and_a_rerun_executes_none() -> None:
    class Kept(MemoryStorage):
        opened: ClassVar[list[MemoryStorage]] = []

        def __init__(self, options: object = None, *, naming: ExactNaming) -> None:
            super().__init__(options, naming=naming)
            Kept.opened.append(self)

    progress = _Recorder()
    summary = run(fake_run_spec(Kept, instances=3), progress=progress)
    assert (summary.planned, summary.executed, summary.newly_completed, summary.status) == (6, 6, 6, "completed")
    assert summary.outcomes == {"success": 6}
    assert sum(summary.units_by_deployment.values()) == 6
    assert set(summary.units_by_deployment) <= {MODEL, f"{MODEL}-2"}
    assert len(progress.done) == 6
    (record,) = Kept.opened[0].runs()
    assert (record["status"], record["executed_units"]) == ("completed", 6)


# --- batches ------------------------------------------------------------------------------------------------------


def _expected_batches(waiting: int, max_batch: int) -> list[int]:
    """The first result is written alone; the `waiting` results that arrive meanwhile follow in full batches."""
    return [1] + [min(max_batch, waiting - start) for start in range(0, waiting, max_batch)]


@pytest.mark.parametrize("max_batch", [1, 2, 3])
@pytest.mark.parametrize("extra", [-1, 0, 1, None])
def test_batches_hold_at_most_write_batch_results_and_every_worker_gets_its_commit(
    max_batch: int, extra: int | None
) -> None:
    """`extra=0` is the boundary: exactly `write_batch` results are waiting when the first transaction ends."""
    waiting = 2 * max_batch + 1 if extra is None else max_batch + extra
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    committed: list[str] = []
    writer = ResultWriter(storage, max_batch=max_batch, on_commit=lambda result, calls: committed.append(result.key))
    results = [_result(i) for i in range(1 + waiting)]

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            first = asyncio.ensure_future(writer.submit(results[0], []))
            await _until_started(storage)
            rest = [asyncio.ensure_future(writer.submit(r, [])) for r in results[1:]]
            await asyncio.sleep(0)  # every waiting worker has handed over its result
            storage.gate.set()
            await asyncio.gather(first, *rest)
            await writer.close()

    asyncio.run(scenario())
    assert storage.batches == _expected_batches(waiting, max_batch)
    assert committed == [r.key for r in results]
    assert _stored(storage, results) == {r.key for r in results}
    assert (writer.committed, writer.newly_completed, writer.transactions) == (
        len(results),
        len(results),
        len(storage.batches),
    )


def test_newly_completed_counts_what_storage_completed_not_what_was_written() -> None:
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    storage.gate.set()
    writer = ResultWriter(storage, max_batch=10)
    done, infra, again = _result(0), _result(1, Outcome.INFRA_ERROR), _result(2, key=f"{0:032x}")

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(writer.submit(done, []), writer.submit(infra, []))
            await writer.submit(again, [])
            await writer.close()

    asyncio.run(scenario())
    assert (writer.committed, writer.newly_completed, writer.transactions) == (3, 1, 2)


def _burn(seconds: float) -> None:
    """Spin until this thread has used `seconds` of CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_the_writer_reports_the_cpu_of_its_storage_thread_and_not_the_event_loops() -> None:
    """`cpu_s` is the storage thread's own CPU: 50 ms burned there count, 200 ms burned on the event loop do not."""
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    storage.gate.set()
    writer = ResultWriter(storage, max_batch=10)

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S * 2):
            await writer.submit(_result(0), [])
            await writer.call(_burn, 0.05)
            _burn(0.2)
            await writer.close()

    asyncio.run(scenario())
    assert 0.05 <= writer.cpu_s < 0.2


# --- call records -------------------------------------------------------------------------------------------------


def test_call_records_are_stored_with_their_result_and_handed_to_on_commit() -> None:
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    storage.gate.set()
    seen: list[tuple[str, list[int]]] = []
    writer = ResultWriter(
        storage, max_batch=4, on_commit=lambda result, calls: seen.append((result.key, [c.attempt for c in calls]))
    )
    first, second = _result(0), _result(1)

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(
                writer.submit(first, [_call(first, 1), _call(first, 2)]), writer.submit(second, [_call(second, 1)])
            )
            await writer.close()

    asyncio.run(scenario())
    assert seen == [(first.key, [1, 2]), (second.key, [1])]
    (share,) = storage.deployment_shares(ReportFilter())
    assert (share["deployment"], share["units"], share["calls"]) == (MODEL, 2, 3)


# --- closing and cancellation -------------------------------------------------------------------------------------


def test_close_returns_only_after_the_last_queued_result_is_committed() -> None:
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    writer = ResultWriter(storage, max_batch=2)
    results = [_result(i) for i in range(5)]

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            submits = [asyncio.ensure_future(writer.submit(r, [])) for r in results]
            await _until_started(storage)
            closing = asyncio.ensure_future(writer.close())
            await asyncio.sleep(0.05)
            assert not closing.done(), "close() returned while a commit was still running"
            storage.gate.set()
            await closing
            assert _stored(storage, results) == {r.key for r in results}, "close() returned before the last commit"
            await asyncio.gather(*submits)  # and every worker is told

    asyncio.run(scenario())
    assert writer.committed == len(results)


def test_close_commits_results_handed_over_just_before_it() -> None:
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    storage.gate.set()
    writer = ResultWriter(storage, max_batch=3)
    results = [_result(i) for i in range(4)]

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            submits = [asyncio.ensure_future(writer.submit(result, [])) for result in results]
            await asyncio.sleep(0)
            await writer.close()
            assert _stored(storage, results) == {r.key for r in results}
            await asyncio.gather(*submits)  # and every worker is told

    asyncio.run(scenario())


def test_a_worker_cancelled_while_its_result_commits_still_gets_it_committed_and_counted() -> None:
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    counted: list[str] = []
    writer = ResultWriter(storage, max_batch=2, on_commit=lambda result, calls: counted.append(result.key))
    result = _result(0)

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            worker = asyncio.ensure_future(writer.submit(result, []))
            await _until_started(storage)
            worker.cancel()
            storage.gate.set()
            with pytest.raises(asyncio.CancelledError):
                await worker
            await writer.close()

    asyncio.run(scenario())
    assert counted == [result.key]
    assert _stored(storage, [result]) == {result.key}


def test_other_storage_calls_run_on_the_writer_thread_and_return_their_value() -> None:
    storage = _storage()
    writer = ResultWriter(storage, max_batch=2)

    async def scenario() -> tuple[str, list[dict[str, object]]]:
        writer.start()
        thread = await writer.call(lambda: threading.current_thread().name)
        runs = await writer.call(storage.runs)
        await writer.close()
        return thread, runs

    thread, runs = asyncio.run(scenario())
    assert thread.startswith("fleetbench-writer")
    assert [r["run_id"] for r in runs] == [RUN]


def test_other_storage_calls_never_run_while_a_commit_does() -> None:
    storage = _storage()
    assert isinstance(storage, GatedStorage)
    writer = ResultWriter(storage, max_batch=2)
    order: list[str] = []

    async def scenario() -> None:
        writer.start()
        async with asyncio.timeout(WAIT_S):
            commit = asyncio.ensure_future(writer.submit(_result(0), []))
            await _until_started(storage)
            other = asyncio.ensure_future(writer.call(lambda: order.append(f"call after {len(storage.batches)}")))
            await asyncio.sleep(0.05)
            assert not other.done(), "a storage call ran beside a running commit"
            storage.gate.set()
            await asyncio.gather(commit, other)
            await writer.close()

    asyncio.run(scenario())
    assert order == ["call after 1"]


def test_close_waits_for_a_storage_call_whose_caller_gave_up() -> None:
    storage = _storage()
    writer = ResultWriter(storage, max_batch=2)
    release, finished = threading.Event(), threading.Event()

    def slow_heartbeat() -> None:
        release.wait(WAIT_S)
        finished.set()

    async def scenario() -> None:
        writer.start()
        caller = asyncio.ensure_future(writer.call(slow_heartbeat))
        await asyncio.sleep(0.01)
        caller.cancel()
        threading.Timer(0.05, release.set).start()
        await writer.close()

    asyncio.run(scenario())
    assert finished.is_set(), "close() returned while a storage call was still running on the writer thread"


def test_a_writer_that_never_started_closes_cleanly_and_names_its_task_when_it_does() -> None:
    asyncio.run(ResultWriter(_storage(), max_batch=2).close())

    async def names() -> set[str]:
        writer = ResultWriter(_storage(), max_batch=2)
        writer.start()
        found = {task.get_name() for task in asyncio.all_tasks()}
        await writer.close()
        return found

    assert "fleetbench-writer" in asyncio.run(names())

"""Claims are taken on the storage's thread, one batch ahead of the units handed out: the event loop that pulls units
never waits for the database's write lock unless it catches up with the claim in progress. Order and skipping are
those of claiming inline.

Driven on the in-memory storage (it keeps the storage contract), with a claims thread as the run makes one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from fleetbench.claims import ClaimedUnits, Lease, ListedUnits
from fleetbench.interfaces import NoOptions
from fleetbench.testing.contracts.storage import kit_units
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage
from fleetbench.testing.runs import fake_models
from fleetbench.types import Catalog, RunRecord, Unit

MODEL = "Kit-Model"


class ClaimThreads(MemoryStorage):
    """The in-memory storage, noting the thread each claim runs on."""

    threads: list[str]

    def claim(self, run_id: str, units: Sequence[Unit], now: float, expires_at: float) -> Collection[str]:
        self.threads.append(threading.current_thread().name)
        return super().claim(run_id, units, now, expires_at)


def _storage() -> ClaimThreads:
    storage = ClaimThreads(NoOptions(), naming=ExactNaming(NoOptions(), catalog=Catalog(fake_models([MODEL]))))
    storage.threads = []
    for run_id in ("mine", "theirs"):
        storage.begin_run(RunRecord(run_id, time.time(), "grid", (MODEL,), {}, "v", socket.gethostname()))
    return storage


def test_the_next_batch_is_claimed_on_the_claims_thread_while_this_one_goes_out() -> None:
    storage = _storage()
    units = kit_units(MODEL, instances=4)  # 8 units: 4 batches of 2
    storage.claim("theirs", units[3:4], time.time(), time.time() + 600)
    storage.threads.clear()
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetbench-claims")
    try:
        stream = ClaimedUnits(ListedUnits(units), Lease(storage, "mine", 600.0, 2), thread.submit).stream()
        first = next(stream)
        deadline = time.monotonic() + 10
        while len(storage.threads) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(storage.threads) == 2, "handing out the first unit started the second batch's claim"
        rest = list(stream)
    finally:
        thread.shutdown(wait=True)
    assert [first, *rest] == [u for u in units if u is not units[3]], "plan order; the unit held elsewhere skipped"
    assert len(storage.threads) == 4
    assert all(name.startswith("fleetbench-claims") for name in storage.threads), storage.threads


def test_without_a_thread_claims_run_inline_one_batch_ahead() -> None:
    storage = _storage()
    units = kit_units(MODEL, instances=2)
    stream = ClaimedUnits(ListedUnits(units), Lease(storage, "mine", 600.0, 2)).stream()
    assert next(stream) == units[0]
    assert storage.threads == [threading.current_thread().name] * 2
    assert list(stream) == units[1:]

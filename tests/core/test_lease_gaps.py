"""A unit's requests trust its claim from memory only while the run's claims have been renewed without a gap."""

from __future__ import annotations

import time

import pytest

from fleetbench import claims
from fleetbench.claims import Lease
from fleetbench.interfaces import NoOptions
from fleetbench.testing.contracts.storage import KIT_CATALOG, kit_units, run_record
from fleetbench.testing.fakes import ExactNaming
from fleetbench.testing.memory_storage import MemoryStorage

LEASE_S = 10.0


def test_a_gap_in_the_renewals_makes_a_started_unit_ask_the_database_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]  # the lease clock, moved by hand: a stop (SIGSTOP, a suspend) is a jump of it
    monkeypatch.setattr(claims, "lease_clock", lambda: clock[0])
    storage = MemoryStorage(naming=ExactNaming(NoOptions(), catalog=KIT_CATALOG))
    for run in ("me", "other"):
        storage.begin_run(run_record(run))
    unit = kit_units()[0]
    lease = Lease(storage, "me", LEASE_S, batch=4)
    assert lease.take([unit]) == [unit] and lease.hand_out(unit, clock[0])
    assert lease.still_held(unit), "its first request, just claimed"
    clock[0] += 4
    lease.renew()
    assert lease.still_held(unit), "renewed 4 s after the last: no gap"
    clock[0] += 8
    assert not lease.still_held(unit), "8 s without a renewal (3/4 of the lease is 7.5): not sure any more"
    lease.renew()
    assert not lease.still_held(unit), "confirmed before the gap: the database must say"
    assert lease.recheck(unit) and lease.still_held(unit), "still its own: confirmed again"
    # Stopped past its lease again, and this time another run took the unit over meanwhile.
    clock[0] += 20
    storage.claim("other", [unit], now=time.time() + 3 * LEASE_S, expires_at=time.time() + 100 * LEASE_S)
    lease.renew()
    assert not lease.still_held(unit) and not lease.recheck(unit)
    assert unit.key not in lease.confirmed


def test_the_lease_clock_counts_on_through_a_suspend_where_the_system_has_such_a_clock() -> None:
    # CLOCK_BOOTTIME includes suspended time; time.monotonic() does not, and a machine that slept past its lease
    # would then see no gap at all.
    if not hasattr(time, "CLOCK_BOOTTIME"):
        pytest.skip("no CLOCK_BOOTTIME on this system")
    before = time.clock_gettime(time.CLOCK_BOOTTIME)
    assert before <= claims.lease_clock() <= time.clock_gettime(time.CLOCK_BOOTTIME)

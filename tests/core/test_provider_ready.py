"""`Provider.ready`: awaited once before a run's first request, so a provider's start-up (litellm imports for seconds)
is never counted in a call's latency."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

from fleetbench.config import compose_config, resolve_run
from fleetbench.registry import PluginRef
from fleetbench.runner import run
from fleetbench.testing.fakes import ScriptedProvider
from fleetbench.types import Completion, Lane, Request


class SlowStartProvider(ScriptedProvider):
    """Takes a while to get ready, and records when it was ready and when each request started."""

    instances: ClassVar[list[SlowStartProvider]] = []

    def __init__(self, options: Any = None) -> None:
        super().__init__(options, answer=lambda _: "42")
        self.readied = 0
        self.ready_at: float | None = None
        self.starts: list[float] = []
        SlowStartProvider.instances.append(self)

    async def ready(self) -> None:
        self.readied += 1
        await asyncio.sleep(0.3)
        self.ready_at = time.time()

    async def complete(self, lane: Lane, request: Request) -> Completion:
        self.starts.append(time.time())
        return await super().complete(lane, request)


def test_the_run_awaits_ready_once_before_any_request_and_no_call_latency_holds_it(tmp_path: Path) -> None:
    db = tmp_path / "ready.db"
    spec = resolve_run(compose_config([f"storage.url=sqlite:///{db}", "run.instances=2", "run.progress=off"]))
    refs = {
        name: PluginRef(ref.kind, ref.name, SlowStartProvider, ref.options, ref.key)
        for name, ref in spec.providers.items()
    }
    started = time.time()
    summary = run(dataclasses.replace(spec, providers=refs))
    assert summary.executed == summary.planned > 0
    provider = SlowStartProvider.instances[-1]
    assert provider.readied == 1 and provider.ready_at is not None and provider.starts
    assert min(provider.starts) >= provider.ready_at
    with sqlite3.connect(db) as connection:
        calls = connection.execute("select started_at, latency_s from calls").fetchall()
    assert len(calls) == len(provider.starts)
    assert all(started_at >= provider.ready_at for started_at, _ in calls)
    assert all(latency < provider.ready_at - started for _, latency in calls)  # none waited through ready()

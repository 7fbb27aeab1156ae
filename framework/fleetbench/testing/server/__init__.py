"""`fleetbench serve`: an OpenAI- and Azure-compatible HTTP server answering as the simulated models, for tests,
benchmarks and demos of the real HTTP path (litellm, connections, rate limits, faults) without a real API.

- `config.py`: which deployments are served and how each behaves (latency, concurrency limit, faults, refused keys);
- `app.py`: the aiohttp routes and the per-request logic; `wire.py`: the chat-completions format;
- `models.py`: the simulated provider behind it (loaded through the registry);
- `log.py`: the JSON-lines request log (deployment, key fingerprint, times, status);
- `environment.py`: the environment that points the catalog's real-model entries at a running server.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from .app import Served, make_app
from .config import ServeConfig
from .log import RequestLog


async def serve(
    config: ServeConfig,
    host: str,
    port: int,
    log: RequestLog,
    on_ready: Callable[[str], None],
) -> None:
    """Serve until SIGINT or SIGTERM, logging each request to `log` (closed at the end). `on_ready` gets the base URL
    once the socket listens (port 0 = any free port)."""
    runner = web.AppRunner(make_app(Served(config, log)), handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound = runner.addresses[0]
        on_ready(f"http://{host}:{bound[1]}")
        await _until_stopped()
    finally:
        await runner.cleanup()
        log.close()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def announce(url: str, count: int) -> None:
    """The first line on stdout (tests and scripts read the URL from it)."""
    sys.stdout.write(f"fleetbench serve: {count} deployments on {url}\n")
    sys.stdout.flush()

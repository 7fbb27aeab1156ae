"""`fleetbench serve` as a real child process, for tests and benchmarks: started on a free port of 127.0.0.1,
stopped (SIGTERM, then SIGKILL) when the context ends."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .log import read_log


@dataclasses.dataclass(frozen=True)
class RunningServer:
    """A server process that is listening."""

    url: str
    log_path: Path
    pid: int

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def requests(self) -> list[dict[str, Any]]:
        """The request log so far."""
        return read_log(self.log_path) if self.log_path.exists() else []

    def environment(self, models: Sequence[str] = ()) -> dict[str, str]:
        """The environment pointing the catalog's real-model endpoints and keys at this server (`--print-env`)."""
        command = [sys.executable, "-m", "fleetbench.entry", "serve", "--print-env", "--port", str(self.port), *models]
        lines = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


@contextlib.contextmanager
def served(
    directory: Path,
    config: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = 60.0,
) -> Iterator[RunningServer]:
    """Start `fleetbench serve --port 0` with `config` (written as JSON into `directory`) and a request log there."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "serve-requests.jsonl"
    command = [sys.executable, "-m", "fleetbench.entry", "serve", "--port", "0", "--log", str(log_path), *args]
    if config is not None:
        config_path = directory / "serve-config.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        command += ["--config", str(config_path)]
    with (directory / "serve-stderr.txt").open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, **(env or {})}
        )
        try:
            yield RunningServer(_ready_url(process, start_timeout_s, directory), log_path, process.pid)
        finally:
            _stop(process)


def _ready_url(process: subprocess.Popen[str], timeout_s: float, directory: Path) -> str:
    """The URL of the server's first stdout line (`fleetbench serve: N deployments on URL`)."""
    assert process.stdout is not None
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout_s):
        raise RuntimeError(f"fleetbench serve did not start within {timeout_s:g}s")
    line = process.stdout.readline()
    if " on http://" not in line:
        _stop(process)
        stderr = (directory / "serve-stderr.txt").read_text(encoding="utf-8")
        raise RuntimeError(f"fleetbench serve failed to start: {line!r} {stderr[-2000:]}")
    return line.strip().rsplit(" ", 1)[1]


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()

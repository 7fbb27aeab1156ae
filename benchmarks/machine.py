"""How fast this machine's CPU is right now, printed beside timings that depend on it.

A shared or throttled machine can run the same code 1.5× slower from one minute to the next, so a benchmark prints
the time of a fixed pure-Python loop next to its figures: two figures are comparable only when their loops are.
"""

from __future__ import annotations

import time


def cpu_speed_note(repeats: int = 3) -> str:
    """'a fixed loop (10 M additions) took X s of CPU (best of `repeats`)': lower is faster."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        total = 0
        for number in range(10_000_000):
            total += number
        best = min(best, time.process_time() - started)
    return f"machine speed: a fixed loop (10 M additions) took {best:.2f} s of CPU, best of {repeats} (lower is faster)"

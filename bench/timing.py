"""Timing helpers the benchmarks share."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """The median wall time of `repeats` calls of `action`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

"""Admitting photos by the memory their pixels will take, not by their count.

Four 4096x4096 photos are 64 times the memory of four 512x512 ones, so a
photo count bounds nothing. Each photo waits here until its estimated peak
(`PEAK_BYTES_PER_PIXEL` times its declared pixels, read from the file header
before anything is decoded) fits in the budget; the budget comes from the
gateway's memory limit (its cgroup's, in a pod) unless set. A photo larger
than the whole budget runs alone.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from gateway import metrics

#: The gateway's peak per pixel of a photo in flight (measured, bench/gateway_memory_bench.py): the
#: decoded RGB and its serialised message (3 + 3 bytes), the shared generator request and the copies
#: the calls in flight make (3 each, a few at once), and the candidates as PNG until they are stored.
PEAK_BYTES_PER_PIXEL = 24
#: Share of the memory limit photos may take: the rest is the process, uploads being read, responses.
LIMIT_SHARE = 0.6
#: Without a readable limit (a laptop): one GiB.
DEFAULT_BUDGET = 1 << 30
CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


def budget_from_limit(limit_file: Path = CGROUP_LIMIT) -> int:
    """LIMIT_SHARE of the cgroup's memory limit, or DEFAULT_BUDGET when there is none."""
    try:
        text = limit_file.read_text().strip()
    except OSError:
        return DEFAULT_BUDGET
    return int(int(text) * LIMIT_SHARE) if text.isdigit() else DEFAULT_BUDGET


class PixelBudget:
    def __init__(self, budget_bytes: int) -> None:
        self.total = budget_bytes
        self.free = budget_bytes
        self._changed = asyncio.Event()
        metrics.MEMORY_BUDGET.set(budget_bytes)

    @asynccontextmanager
    async def photo(self, pixels: int) -> AsyncIterator[None]:
        """Hold the photo's share of the budget while it is processed."""
        cost = min(self.total, max(1, pixels) * PEAK_BYTES_PER_PIXEL)
        while self.free < cost:
            await self._changed.wait()
        self.free -= cost
        metrics.MEMORY_BUDGET_USED.set(self.total - self.free)
        try:
            yield
        finally:
            self.free += cost
            metrics.MEMORY_BUDGET_USED.set(self.total - self.free)
            self._changed.set()
            self._changed = asyncio.Event()

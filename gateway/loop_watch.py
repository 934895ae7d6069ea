"""Watching the event loop for stalls: every HTTP, SSE and gRPC client waits while it is blocked.

A 10 ms timer that fires late was late because something ran on the loop
instead of awaiting; the lateness is the stall. Exported as a histogram and
a worst-so-far gauge, so a regression (CPU work or file I/O creeping back onto
the loop) shows in metrics and in bench/gateway_memory_bench.py.
"""

from __future__ import annotations

import asyncio

from gateway import metrics

TICK = 0.01


async def watch_loop() -> None:
    loop = asyncio.get_running_loop()
    worst = 0.0
    while True:
        start = loop.time()
        await asyncio.sleep(TICK)
        lag = max(0.0, loop.time() - start - TICK)
        metrics.LOOP_LAG.observe(lag)
        if lag > worst:
            worst = lag
            metrics.LOOP_WORST_STALL.set(worst)

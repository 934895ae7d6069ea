"""Dynamic batching across requests, the way Triton's dynamic batcher does it.

Concurrent RPCs that run the same model on inputs of the same shape (the
upscaler's and the detector's fixed-size tiles, the generator's working
resolution) can share one inference call: on a GPU one batch of 8 costs
little more than one input. A caller hands its input to the batcher and
waits; the batcher runs whatever has queued once `preferred` inputs of one
shape are waiting, or once the oldest has waited `max_delay` seconds, so a
lone request pays at most that delay. `preferred` 1 turns it off: each call
runs at once on its caller's thread, exactly as without a batcher.

Requests that hold `serving()` for their whole run tell the batcher who might
still come: once every such request is waiting inside the batcher, nobody else
can join, and the batch runs without waiting out the delay. A lone request's
tiles then run at once, as with batching off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from services.common import metrics

#: Runs a batch: N x ... float32 in, N x ... float32 out.
Run = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Waiting:
    inputs: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    output: np.ndarray | None = None
    error: BaseException | None = None


class DynamicBatcher:
    def __init__(self, run: Run, name: str, preferred: int = 1, max_delay: float = 0.002) -> None:
        self._run = run
        self._name = name
        self._preferred = max(1, preferred)
        self._max_delay = max_delay
        self._lock = threading.Lock()
        #: Shape (without the batch axis) -> inputs waiting, oldest first, and when the oldest came.
        self._queues: dict[tuple[int, ...], tuple[float, list[_Waiting]]] = {}
        #: Requests inside `serving()`, and calls inside the batcher (queued or running).
        self._serving = 0
        self._calling = 0

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Hold for the whole of one request: batches stop waiting once every request held so is inside."""
        with self._lock:
            self._serving += 1
        try:
            yield
        finally:
            with self._lock:
                self._serving -= 1

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """`run(inputs)`, possibly sharing the call with other threads' inputs of the same shape."""
        if self._preferred == 1:
            return self._run(inputs)
        waiting = _Waiting(inputs)
        shape = inputs.shape[1:]
        with self._lock:
            since, queue = self._queues.setdefault(shape, (time.monotonic(), []))
            queue.append(waiting)
            leader = len(queue) == 1
            self._calling += 1
        try:
            if leader:
                self._lead(shape, since)
            waiting.done.wait()
        finally:
            with self._lock:
                self._calling -= 1
        if waiting.error is not None:
            raise waiting.error
        assert waiting.output is not None
        return waiting.output

    def _lead(self, shape: tuple[int, ...], since: float) -> None:
        """The first caller of a batch waits for company, then runs everyone's inputs at once."""
        deadline = since + self._max_delay
        while True:
            with self._lock:
                count = sum(len(w.inputs) for w in self._queues[shape][1])
                nobody_else = 0 < self._serving <= self._calling
                if count >= self._preferred or nobody_else or time.monotonic() >= deadline:
                    _, batch = self._queues.pop(shape)
                    break
            time.sleep(min(0.0005, max(0.0, deadline - time.monotonic())))
        metrics.BATCH_SIZE.labels(self._name).observe(sum(len(w.inputs) for w in batch))
        try:
            outputs = self._run(np.concatenate([w.inputs for w in batch]))
        except BaseException as error:  # every waiter learns what happened to its input
            for waiting in batch:
                waiting.error = error
                waiting.done.set()
            return
        start = 0
        for waiting in batch:
            waiting.output = outputs[start:start + len(waiting.inputs)]
            start += len(waiting.inputs)
            waiting.done.set()

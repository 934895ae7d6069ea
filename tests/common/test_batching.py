"""The dynamic batcher: concurrent same-shape inputs share one call, each caller gets its own rows back,
a lone caller waits at most the delay (not at all when it says it is serving alone), failures reach every
waiter, and 1 turns it off."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from services.common.batching import DynamicBatcher


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.threads: set[int] = set()
        self.fail = fail

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        self.threads.add(threading.get_ident())
        time.sleep(0.02)
        if self.fail:
            raise RuntimeError("the model broke")
        return batch * 2


def test_concurrent_inputs_share_calls_and_get_their_own_rows():
    run = Recorder()
    batcher = DynamicBatcher(run, "test", preferred=4, max_delay=0.2)
    inputs = [np.full((1, 3, 8, 8), float(i), np.float32) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(batcher, inputs))
    assert all(np.array_equal(out, inp * 2) for inp, out in zip(inputs, outputs))
    assert sum(run.sizes) == 8 and max(run.sizes) >= 4 and len(run.sizes) <= 4


def test_a_lone_input_waits_at_most_the_delay_and_shapes_never_mix():
    run = Recorder()
    batcher = DynamicBatcher(run, "test", preferred=8, max_delay=0.01)
    start = time.monotonic()
    batcher(np.zeros((1, 3, 8, 8), np.float32))
    assert time.monotonic() - start < 0.01 + 0.02 + 0.05
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batcher, [np.zeros((1, 3, 8, 8 + i % 2), np.float32) for i in range(4)]))
    assert all(size <= 2 for size in run.sizes)


def test_a_lone_request_serving_never_waits_and_concurrent_ones_still_share():
    run = Recorder()
    batcher = DynamicBatcher(run, "test", preferred=8, max_delay=0.5)
    start = time.monotonic()
    with batcher.serving():
        for _ in range(3):  # a request's tiles, one after another: nobody else can join them
            batcher(np.zeros((1, 3, 8, 8), np.float32))
    assert time.monotonic() - start < 3 * 0.02 + 0.2, "a lone request waited out the delay"

    barrier = threading.Barrier(4)

    def request(value: float) -> np.ndarray:
        with batcher.serving():
            barrier.wait()  # all four in flight before any queues
            return batcher(np.full((1, 3, 8, 8), value, np.float32))

    run.sizes.clear()
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(request, [1.0, 2.0, 3.0, 4.0]))
    assert [float(out.mean()) for out in outputs] == [2.0, 4.0, 6.0, 8.0]
    assert max(run.sizes) >= 2, "requests in flight together should have shared a call"


def test_a_failure_reaches_every_waiter():
    batcher = DynamicBatcher(Recorder(fail=True), "test", preferred=3, max_delay=0.2)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher, np.zeros((1, 2), np.float32)) for _ in range(3)]
        for future in futures:
            with pytest.raises(RuntimeError, match="the model broke"):
                future.result(5)


def test_preferred_one_runs_at_once_on_the_callers_thread():
    run = Recorder()
    DynamicBatcher(run, "test", preferred=1)(np.zeros((2, 2), np.float32))
    assert run.sizes == [2] and run.threads == {threading.get_ident()}

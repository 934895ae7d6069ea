"""Stopping work whose caller has gone, between tiles and batches rather than after the whole photo.

gRPC tells a handler that its caller cancelled (or its deadline passed) only
through the RPC context, which engines do not see. The interceptor makes the
context of the RPC being served current in its thread (`serving`), and long
loops call `check()` between units of work: a 4096x4096 upscale stops within
a tile of the gateway cancelling its job instead of running on for seconds.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator, Protocol


class _Context(Protocol):
    def is_active(self) -> bool: ...


class Cancelled(Exception):
    """The caller of the RPC being served has gone; the work is abandoned."""


_current: contextvars.ContextVar[_Context | None] = contextvars.ContextVar("revive_rpc_context", default=None)


@contextmanager
def serving(context: _Context) -> Iterator[None]:
    """Make `context` the RPC whose caller `check()` asks about, in this thread, for the block."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def check() -> None:
    """Raise Cancelled when the RPC being served has been cancelled; nothing outside an RPC (tests, bench)."""
    context = _current.get()
    if context is not None and not context.is_active():
        raise Cancelled("the caller cancelled or its deadline passed")

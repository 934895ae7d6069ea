"""Errors that carry a meaning across the wire.

Engines and codecs raise these instead of gRPC-specific exceptions so they stay
usable outside a server (benchmarks, training scripts); the server interceptor
turns them into status codes in one place.
"""


class InvalidInput(ValueError):
    """The caller sent something we cannot process; maps to INVALID_ARGUMENT."""


class NotReady(RuntimeError):
    """The service is still loading its models; maps to UNAVAILABLE so callers retry."""

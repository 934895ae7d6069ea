"""Named inference engines that a service loads at start and picks per request.

Engines are looked up by name so that a learned model and the classical
baseline it must beat can run side by side in one server (the benchmarks'
reference), the way Triton serves several models behind one endpoint.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Generic, Mapping, Protocol, TypeVar

from services.common.config import ServiceConfig, Settings
from services.common.errors import InvalidInput, NotReady
from services.common.runtime import RuntimeOptions


class Engine(Protocol):
    """What the server bootstrap needs from any engine."""

    #: Name used in requests, metrics and logs.
    name: str
    #: What really executes it: an ONNX Runtime provider, or e.g. "opencv".
    provider: str

    def warm_up(self) -> None:
        """Run one small inference so the first request pays no start-up cost."""


E = TypeVar("E", bound=Engine)
EngineFactory = Callable[[ServiceConfig], E]


class EngineSet(Generic[E]):
    """The engines a server has loaded; empty until loading finishes."""

    def __init__(self) -> None:
        self._engines: dict[str, E] = {}
        self._default = ""

    def load(self, factories: Mapping[str, EngineFactory[E]], config: ServiceConfig) -> None:
        unknown = [name for name in config.engines if name not in factories]
        if unknown:
            raise ValueError(f"unknown engine(s) {unknown}; known: {sorted(factories)}")
        loaded = {}
        for name in config.engines:
            engine = factories[name](config)
            engine.warm_up()
            loaded[name] = engine
        self._engines, self._default = loaded, config.default_engine

    def get(self, name: str = "") -> E:
        """The engine called `name`, or the default for an empty name."""
        if not self._engines:
            raise NotReady("models are still loading")
        try:
            return self._engines[name or self._default]
        except KeyError:
            raise InvalidInput(f"engine {name!r} is not loaded here; loaded: {sorted(self._engines)}") from None

    def __iter__(self):
        return iter(self._engines.values())


def runtime_options(config: ServiceConfig) -> RuntimeOptions:
    """The ONNX Runtime settings a service's flags ask for."""
    return RuntimeOptions(
        providers=config.providers, threads=config.threads, trt_cache_dir=config.trt_cache_dir
    )


S = TypeVar("S", bound=Settings)


def engine_settings(config: ServiceConfig | None, kind: type[S], **overrides: object) -> S:
    """The service's engine settings (defaults without a config), with `overrides` for tests and benchmarks."""
    settings = config.settings if config is not None and isinstance(config.settings, kind) else kind()
    return replace(settings, **overrides)

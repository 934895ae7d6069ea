"""Configuration from flags, with every flag also settable by environment.

`--metrics-port` can be given as `REVIVE_METRICS_PORT`, and so on: flags win
over the environment, the environment over the defaults. Kubernetes sets the
environment from a ConfigMap; people at a shell pass flags.

A setting is written once, as a dataclass field made by `flag()`: its type,
default, help text and bounds. The parser, `--help` and the typed config
object all come from that one declaration, so a knob cannot exist in the code
without showing up in `--help`, nor the other way round.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

ENV_PREFIX = "REVIVE_"

MIB = 1024 * 1024

#: Default execution providers, most preferred first; unavailable ones are skipped.
DEFAULT_PROVIDERS = ("tensorrt", "cuda", "cpu")


def flag(default: Any, help: str, *, minimum: float | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field that is also a command-line flag (and REVIVE_* variable)."""
    return field(default=default, metadata={"help": help, "minimum": minimum, "choices": choices})


def csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def env_default(name: str, default: str) -> str:
    """The environment's value for flag `--name`, or `default`."""
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def _parser_for(kind: Any):
    """How a flag's text becomes the field's type."""
    if kind in (int, float, str, Path):
        return kind
    if kind is bool:
        return lambda text: str(text).strip().lower() in ("1", "true", "yes", "on")
    if typing.get_origin(kind) is tuple:
        return csv
    raise TypeError(f"no flag parser for {kind!r}")


def _shown(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


class Settings:
    """Base of a group of flags; subclasses are frozen dataclasses whose fields come from `flag()`.

    `PREFIX` is put before every flag of the group (e.g. "upscaler-" gives
    `--upscaler-tile` / `REVIVE_UPSCALER_TILE`), so one environment can hold
    every service's knobs without clashes (`make run` shares one).
    """

    PREFIX: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""

    @classmethod
    def flag_name(cls, name: str) -> str:
        return cls.PREFIX + name.replace("_", "-")

    @classmethod
    def add_to(cls, parser: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None) -> None:
        """Add one flag per field; `defaults` overrides field defaults (e.g. each service's port)."""
        defaults = defaults or {}
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(cls.TITLE) if cls.TITLE else parser
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "help" not in item.metadata:
                continue
            name = cls.flag_name(item.name)
            default = defaults.get(item.name, item.default)
            convert = _parser_for(hints[item.name])
            text = env_default(name, _shown(default))
            choices = item.metadata["choices"]
            help_text = f"{item.metadata['help']} [{ENV_PREFIX}{name.upper().replace('-', '_')}; default %(default)s]"
            group.add_argument(f"--{name}", dest=cls.PREFIX + item.name, type=convert, default=convert(text),
                               metavar=item.name.upper(),
                               choices=choices, help=help_text)

    @classmethod
    def from_args(cls, args: argparse.Namespace, parser: argparse.ArgumentParser, **extra: Any):
        """The settings the parsed flags give; a value out of bounds is a usage error naming the flag."""
        values = {}
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "help" not in item.metadata:
                continue
            value = getattr(args, cls.PREFIX + item.name)
            minimum = item.metadata["minimum"]
            if minimum is not None and value < minimum:
                parser.error(f"--{cls.flag_name(item.name)} must be >= {minimum}, got {value}")
            values[item.name] = value
        try:
            return cls(**values, **extra)
        except ValueError as error:
            parser.error(str(error))


@dataclass(frozen=True)
class NoSettings(Settings):
    """For a service whose engines have no knobs of their own."""


@dataclass(frozen=True)
class ServiceConfig(Settings):
    """Settings every gRPC service shares, plus its engines' own (`settings`)."""

    host: str = flag("127.0.0.1", "address to bind; 0.0.0.0 in containers")
    port: int = flag(0, "gRPC port (0 picks a free one)", minimum=0)
    metrics_port: int = flag(0, "Prometheus /metrics HTTP port (0 picks a free one, -1 disables)", minimum=-1)
    models_dir: Path = flag(Path(__file__).resolve().parents[2] / "models", "directory of model artifacts")
    engines: tuple[str, ...] = flag((), "engines to load, default first")
    threads: int = flag(os.cpu_count() or 1, "intra-op threads for inference", minimum=1)
    providers: tuple[str, ...] = flag(DEFAULT_PROVIDERS, "execution providers in order of preference")
    trt_cache_dir: Path = flag(Path("/tmp/revive-trt-cache"), "TensorRT engine and timing cache directory")
    max_concurrency: int = flag(2, "inferences running at once (bounds full-size images in memory)", minimum=1)
    max_queue: int = flag(8, "RPCs waiting for a slot before RESOURCE_EXHAUSTED", minimum=0)
    max_message_mb: int = flag(256, "largest gRPC message accepted or sent, MiB", minimum=1)
    dynamic_batch: int = flag(
        1, "inputs of the same shape from concurrent requests run as one batch, up to this many (1 = off; "
        "needs --max-concurrency above 1)", minimum=1)
    batch_delay_ms: float = flag(2.0, "longest a batched input waits for others, milliseconds", minimum=0)
    drain_seconds: float = flag(20.0, "grace period for in-flight RPCs on SIGTERM", minimum=0)
    max_connection_age: float = flag(
        60.0, "seconds before a client connection is recycled (lets clients find new replicas)", minimum=1)
    log_level: str = flag("info", "log level", choices=("debug", "info", "warning", "error"))
    otlp_endpoint: str = flag("", "OpenTelemetry collector (OTLP/gRPC, e.g. otel-collector:4317) spans go to; "
                                  "empty: none leave the process")
    tls_cert: str = flag("", "PEM certificate to serve TLS with (empty: plaintext)")
    tls_key: str = flag("", "PEM private key of --tls-cert")
    tls_ca: str = flag("", "PEM CA: when set, only clients with a certificate it signed are served (mTLS)")
    #: The engines' own knobs: an instance of the service's Settings subclass.
    settings: Settings = field(default_factory=NoSettings)

    def __post_init__(self) -> None:
        if not self.engines:
            raise ValueError("--engines must name at least one engine")

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * MIB

    @property
    def default_engine(self) -> str:
        return self.engines[0]


def build_parser(service: str, defaults: Mapping[str, Any], settings: type[Settings]) -> argparse.ArgumentParser:
    """The common flags (with this service's defaults), then its engines' flags."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{service}",
        description=f"Revive {service} gRPC service. Every flag can also be set as "
        f"{ENV_PREFIX}<FLAG> in the environment (e.g. {ENV_PREFIX}PORT).",
    )
    ServiceConfig.add_to(parser, defaults)
    settings.add_to(parser)
    return parser


def parse_config(parser: argparse.ArgumentParser, settings: type[Settings],
                 argv: Sequence[str] | None = None) -> ServiceConfig:
    args = parser.parse_args(argv)
    return ServiceConfig.from_args(args, parser, settings=settings.from_args(args, parser))

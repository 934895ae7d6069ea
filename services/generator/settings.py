"""The generator's own knobs: flags `--generator-*`, variables REVIVE_GENERATOR_*."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Settings, flag


@dataclass(frozen=True)
class GeneratorSettings(Settings):
    PREFIX = "generator-"
    TITLE = "generator engines"

    photo_cache_mb: int = flag(
        512, "memory per engine for recently seen photos and what was worked out for them (filled damage, "
             "faces, regions), so the candidates of a photo sent one seed per call share it; 0 keeps none "
             "(a 4096x4096 photo takes about 200)", minimum=0)

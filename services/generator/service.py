"""The Generator gRPC servicer and the generator's service definition."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import grpc
import numpy as np
from revive.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.engines import EngineSet
from services.common.errors import InvalidInput
from services.common.imaging import RAW, from_proto, to_proto
from services.common.options import MAX_CANDIDATES, validate_options
from services.common.server import ServiceDefinition
from services.generator.engine import RestorationInput
from services.generator.engines.learned import LearnedGenerator
from services.generator.engines.telea import TeleaGenerator
from services.generator.photo_cache import photo_key
from services.generator.repaired import repaired_masks
from services.generator.scoring import ScoredEngine, scored
from services.generator.settings import GeneratorSettings

#: Seeds one call may ask for: the gateway's candidates plus the re-ranking surplus.
MAX_SEEDS = 2 * MAX_CANDIDATES


def restoration_input(request: generator_pb2.GenerateRequest) -> RestorationInput:
    """Decode and cross-check the photo and its masks."""
    rgb = from_proto(request.image, channels=(3,))
    masks = {}
    for index, damage in enumerate(request.damage.masks):
        if not damage.HasField("mask"):
            continue
        mask = from_proto(damage.mask, field=f"damage.masks[{index}].mask", channels=(1,))
        if mask.shape != rgb.shape[:2]:
            raise InvalidInput(f"damage.masks[{index}]: mask is {mask.shape[::-1]}, photo is {rgb.shape[1::-1]}")
        masks[damage.type] = mask
    check_faces(request.damage.faces, rgb.shape[:2])
    return RestorationInput(rgb=rgb, masks=masks, report=request.damage, options=request.options)


def check_faces(faces: Sequence[common_pb2.Face], size: tuple[int, int]) -> None:
    """Every reported face's box has an area and overlaps the photo: the faces are parsed, framed and measured,
    and an empty or stray box would fail deep inside that work instead of telling the caller."""
    height, width = size
    for index, face in enumerate(faces):
        box = face.box
        if not (box.width > 0 and box.height > 0):
            raise InvalidInput(f"damage.faces[{index}].box: width and height must be positive, got "
                               f"{box.width:g} x {box.height:g}")
        if box.x >= width or box.y >= height or box.x + box.width <= 0 or box.y + box.height <= 0:
            raise InvalidInput(f"damage.faces[{index}].box: ({box.x:g}, {box.y:g}, {box.width:g}, {box.height:g}) "
                               f"lies outside the {width}x{height} photo")


class GeneratorServicer(generator_pb2_grpc.GeneratorServicer):
    def __init__(self, engines: EngineSet[ScoredEngine]) -> None:
        self._engines = engines

    def Generate(self, request: generator_pb2.GenerateRequest, context: grpc.ServicerContext) -> Iterator[generator_pb2.Candidate]:
        engine = self._engines.get(request.engine)
        validate_options(request.options)
        if not 1 <= len(request.seeds) <= MAX_SEEDS:
            raise InvalidInput(f"seeds: give between 1 and {MAX_SEEDS}, got {len(request.seeds)}")
        restoration = engine.photos.get(photo_key(request), lambda: restoration_input(request))
        scorer = engine.scorer(restoration)
        guard = engine.face_guard(restoration)
        for seed in request.seeds:
            if not context.is_active():
                return
            restored = engine.generate(restoration, seed, guard.keep_texture if guard else None)
            scores = scorer.score(restored)
            if guard and not scorer.keeps_identity(scores):
                restored = guard.refill(restored)
                scores = scorer.score(restored)
            yield generator_pb2.Candidate(
                seed=seed,
                image=to_proto(restored, request.output_encoding or RAW),
                scores=scores,
                engine=engine.name,
                repaired=repaired_of(restoration, engine.repaired(restoration, seed)),
            )


def repaired_of(restoration: RestorationInput, repaired: np.ndarray) -> list[common_pb2.DamageMask]:
    """The per-type masks of what was filled, encoded once per photo and fill (most engines fill every seed's
    candidate alike)."""
    digest = hashlib.blake2b(repaired.tobytes(), digest_size=16).hexdigest()
    return restoration.once(f"repaired:{digest}", lambda: repaired_masks(repaired, restoration.masks))


DEFINITION = ServiceDefinition(
    name="generator",
    grpc_service=generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name,
    default_port=50052,
    default_metrics_port=9102,
    # Every engine's candidates carry face scores; the first engine is the default.
    engines={"learned": scored(LearnedGenerator), "telea": scored(TeleaGenerator)},
    settings=GeneratorSettings,
    add_servicer=lambda server, engines: generator_pb2_grpc.add_GeneratorServicer_to_server(
        GeneratorServicer(engines), server
    ),
)

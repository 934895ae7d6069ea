"""One photo's journey: decode -> detect -> N x (generate -> upscale) -> store.

The pipeline reports what happens as `RestoreEvent`s, the same messages the
gRPC API streams, so the HTTP API, the gRPC API and jobs share one
orchestration. Candidates are independent calls (one seed each) running
concurrently, so the channels' round_robin spreads them over replicas; a
failure in one cancels its siblings (TaskGroup) and fails just that photo.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import grpc
import numpy as np
from revive.v1 import common_pb2, detector_pb2, gateway_pb2, generator_pb2, upscaler_pb2

from gateway import metrics
from gateway.config import GatewayConfig
from gateway.decoding import decode_photo
from gateway.storage import ResultStore
from gateway.upstreams import UpstreamError, Upstreams
from services.common.errors import InvalidInput
from services.common.imaging import MAX_SIDE, PNG, RAW, encode_png, from_proto, to_proto
from services.common.options import UPSCALE_FACTORS

log = logging.getLogger(__name__)

Emit = Callable[[gateway_pb2.RestoreEvent], None]
#: Masks shown to people as "damage": fading is a soft whole-photo figure instead.
LOCAL_DAMAGE = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN)


@dataclass(frozen=True)
class PhotoUpload:
    index: int
    filename: str
    data: bytes


def applied_upscale(requested: int, width: int, height: int) -> int:
    """The largest allowed factor <= requested that keeps both sides <= MAX_SIDE.

    The gateway clamps instead of refusing: a product user asking x4 of a
    2000-pixel scan wants the biggest print-ready result, and gets told the
    factor applied. (The upscaler service itself refuses oversize requests.)
    """
    fitting = [f for f in UPSCALE_FACTORS if f <= requested and max(width, height) * f <= MAX_SIDE]
    return max(fitting)


def damage_summary(report: common_pb2.DamageReport, width: int, height: int, mask_url: str) -> gateway_pb2.DamageSummary:
    return gateway_pb2.DamageSummary(
        is_grayscale=report.is_grayscale,
        fading_score=report.fading_score,
        coverage={common_pb2.DamageType.Name(m.type).lower(): m.coverage for m in report.masks},
        faces=len(report.faces),
        width=width,
        height=height,
        mask_url=mask_url,
    )


def damage_overlay(report: common_pb2.DamageReport) -> np.ndarray | None:
    """Union of the local damage masks, for people to see what was found."""
    masks = [from_proto(m.mask, channels=(1,)) for m in report.masks if m.type in LOCAL_DAMAGE and m.HasField("mask")]
    return np.maximum.reduce(masks) if masks else None


def surplus(count: int, report: common_pb2.DamageReport, options: common_pb2.RestoreOptions, ratio: float) -> int:
    """Extra seeds to generate, so that ranking has something to choose from.

    Only worth it when the candidates can be told apart: there is a face
    whose identity must be kept, or a gender/age the user asked for.
    """
    if not (report.faces or options.gender or options.HasField("age")):
        return 0
    return math.ceil(count * ratio)


def select(
    candidates: list[gateway_pb2.CandidateResult], seeds: list[int], count: int, min_identity: float
) -> list[gateway_pb2.CandidateResult]:
    """The best `count` by overall score (seed order breaks ties), without identity losses.

    A candidate whose face no longer matches the input's is dropped; if every
    candidate would be, the best one is kept so the user still sees a result.
    """
    ranked = sorted(candidates, key=lambda c: (-c.scores.overall, seeds.index(c.seed)))
    faithful = [
        c for c in ranked
        if not c.scores.HasField("identity_similarity") or c.scores.identity_similarity >= min_identity
    ]
    return (faithful or ranked[:1])[:count]


def first_failure(group: BaseExceptionGroup) -> BaseException:
    """The first real error in a (possibly nested) group of sibling failures."""
    first = group.exceptions[0]
    return first_failure(first) if isinstance(first, BaseExceptionGroup) else first


@contextmanager
def stage(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        metrics.STAGE_SECONDS.labels(name).observe(time.perf_counter() - start)


class Pipeline:
    def __init__(self, upstreams: Upstreams, store: ResultStore, config: GatewayConfig) -> None:
        self._upstreams = upstreams
        self._store = store
        self._default_candidates = config.default_candidates
        self._slots = asyncio.Semaphore(config.max_photos_in_flight)
        self._surplus_ratio = config.surplus_ratio
        self._min_identity = config.min_identity

    async def run(self, request_id: str, photos: list[PhotoUpload], options: common_pb2.RestoreOptions, emit: Emit) -> None:
        """Process every photo concurrently (bounded); each photo's failure is its own."""
        await asyncio.gather(*(self._photo(request_id, photo, options, emit) for photo in photos))

    async def _photo(self, request_id: str, photo: PhotoUpload, options: common_pb2.RestoreOptions, emit: Emit) -> None:
        def event(**fields: object) -> None:
            emit(gateway_pb2.RestoreEvent(photo_index=photo.index, filename=photo.filename, **fields))

        metrics.PHOTOS_WAITING.inc()
        async with self._slots:
            metrics.PHOTOS_WAITING.dec()
            metrics.PHOTOS_IN_FLIGHT.inc()
            try:
                await self._restore(request_id, photo, options, event)
                metrics.PHOTOS.labels("ok").inc()
            except InvalidInput as error:
                metrics.PHOTOS.labels("invalid").inc()
                event(failed=gateway_pb2.PhotoFailed(code="INVALID_ARGUMENT", message=str(error)))
            except UpstreamError as error:
                metrics.PHOTOS.labels("upstream_error").inc()
                message = f"{error.service} failed: {error.details}" if error.details else f"{error.service} failed"
                if error.code == error.code.UNAVAILABLE:
                    message = f"{error.service} is unavailable: {error.details}"
                event(failed=gateway_pb2.PhotoFailed(code=error.code.name, message=message))
            except Exception:
                metrics.PHOTOS.labels("internal_error").inc()
                log.exception("photo failed", extra={"request_id": request_id, "photo": photo.index})
                event(failed=gateway_pb2.PhotoFailed(code="INTERNAL", message="internal error; see the gateway log"))
            finally:
                metrics.PHOTOS_IN_FLIGHT.dec()

    async def _restore(self, request_id: str, photo: PhotoUpload, options: common_pb2.RestoreOptions, event: Callable[..., None]) -> None:
        progress = lambda stage_, fraction: event(progress=gateway_pb2.Progress(stage=stage_, fraction=fraction))  # noqa: E731
        progress(gateway_pb2.DECODE, 0.0)
        with stage("decode"):
            rgb = await asyncio.to_thread(decode_photo, photo.data)
        progress(gateway_pb2.DECODE, 1.0)
        height, width = rgb.shape[:2]
        image = to_proto(rgb)
        del rgb  # the message holds the pixels from here on

        progress(gateway_pb2.DETECT, 0.0)
        with stage("detect"):
            report = (await self._upstreams.detect(detector_pb2.DetectRequest(image=image, analyze_faces=True))).report
        mask_url = ""
        overlay = damage_overlay(report)
        if overlay is not None:
            png = await asyncio.to_thread(encode_png, overlay)
            mask_url = await asyncio.to_thread(self._store.write, request_id, photo.index, "mask.png", png)
        progress(gateway_pb2.DETECT, 1.0)
        event(damage=damage_summary(report, width, height, mask_url))

        count = options.candidates if options.HasField("candidates") else self._default_candidates
        base_seed = options.seed if options.HasField("seed") else secrets.randbits(32)
        extra = surplus(count, report, options, self._surplus_ratio)
        seeds = [(base_seed + i) % 2**64 for i in range(count + extra)]
        factor = applied_upscale(options.upscale if options.HasField("upscale") else 1, width, height)
        done = 0
        progress(gateway_pb2.GENERATE, 0.0)

        async def candidate(seed: int) -> gateway_pb2.CandidateResult:
            nonlocal done
            # The last service in the chain encodes the PNG that is stored and served.
            request = generator_pb2.GenerateRequest(
                image=image, damage=report, options=options, seeds=[seed], output_encoding=PNG if factor == 1 else RAW
            )
            with stage("generate"):
                generated = await self._upstreams.generate_one(request)
            result = generated.image
            if factor > 1:
                with stage("upscale"):
                    upscale = upscaler_pb2.UpscaleRequest(image=result, factor=factor, output_encoding=PNG)
                    result = (await self._upstreams.upscale(upscale)).image
            if result.encoding != PNG or result.channels != 3:
                raise UpstreamError("generator" if factor == 1 else "upscaler", grpc.StatusCode.INTERNAL,
                                    f"expected an RGB PNG, got encoding {result.encoding} with {result.channels} channels")
            with stage("store"):
                url = await asyncio.to_thread(self._store.write, request_id, photo.index, f"candidate-{seed}.png", result.data)
            stored = gateway_pb2.CandidateResult(seed=seed, scores=generated.scores, url=url, image=result)
            metrics.CANDIDATES.inc()
            done += 1
            event(candidate=stored)
            progress(gateway_pb2.GENERATE, done / len(seeds))
            return stored

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(candidate(seed)) for seed in seeds]
        except ExceptionGroup as failures:
            raise first_failure(failures) from None
        kept = select([task.result() for task in tasks], seeds, count, self._min_identity)
        event(done=gateway_pb2.PhotoDone(candidates=len(kept), ranking=[c.seed for c in kept], upscale=factor))

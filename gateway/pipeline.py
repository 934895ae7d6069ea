"""One photo's journey: decode -> detect -> N x generate -> rank -> upscale the kept -> store.

The pipeline reports what happens as `RestoreEvent`s, the same messages the
gRPC API streams, so the HTTP API, the gRPC API and jobs share one
orchestration. Candidates are independent calls (one seed each) that the
dispatcher spreads over generator replicas as they have room; ranking comes
before the expensive step, so only the candidates kept are upscaled (together,
one UpscaleSet call a photo) and stored. A failure in one call cancels its
siblings (TaskGroup) and fails just that photo; a replica that is full or gone
is not a failure (gateway/dispatch.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, Iterable, Iterator

import grpc
import numpy as np
from opentelemetry import trace
from revive.v1 import common_pb2, gateway_pb2

from gateway import messages, metrics
from gateway.budget import PixelBudget, budget_from_limit
from gateway.config import GatewayConfig
from gateway.decoding import declared_pixels, decode_photo
from gateway.storage import ResultStore
from gateway.upstreams import UpstreamError, Upstreams
from services.common.config import MIB
from services.common.errors import InvalidInput
from services.common.imaging import MAX_SIDE, PNG, encode_jpeg, encode_png, from_proto
from services.common.inpainting import BY_EXTENT
from services.common.options import UPSCALE_FACTORS
from services.common.tracing import tracer

log = logging.getLogger(__name__)

Emit = Callable[[gateway_pb2.RestoreEvent], None]
#: Masks shown to people as "damage", each in its colour (the page's legend uses the same):
#: fading is a soft whole-photo figure instead.
OVERLAY_COLOURS = {common_pb2.SCRATCH: (255, 59, 48), common_pb2.TEAR: (10, 132, 255), common_pb2.STAIN: (255, 204, 0)}
LOCAL_DAMAGE = tuple(OVERLAY_COLOURS)


@dataclass(frozen=True)
class PhotoUpload:
    index: int
    filename: str
    data: bytes


def applied_upscale(requested: int, width: int, height: int) -> int:
    """The largest allowed factor <= requested that keeps both sides <= MAX_SIDE.

    The gateway clamps instead of refusing: a product user asking x4 of a
    2000-pixel scan wants the biggest print-ready result, and gets told the
    factor applied. (The upscaler service itself refuses oversize messages.)
    """
    fitting = [f for f in UPSCALE_FACTORS if f <= requested and max(width, height) * f <= MAX_SIDE]
    return max(fitting)


def damage_summary(report: common_pb2.DamageReport, width: int, height: int, mask_url: str,
                   original_url: str) -> gateway_pb2.DamageSummary:
    return gateway_pb2.DamageSummary(
        is_grayscale=report.is_grayscale,
        fading_score=report.fading_score,
        coverage={common_pb2.DamageType.Name(m.type).lower(): m.coverage for m in report.masks},
        faces=len(report.faces),
        width=width,
        height=height,
        mask_url=mask_url,
        original_url=original_url,
    )


def damage_overlay(damage: Iterable[common_pb2.DamageMask]) -> np.ndarray | None:
    """RGBA: each kind of local damage in `damage` (the detector's masks, or what a candidate repaired) in its
    colour, transparent elsewhere.

    Tears are painted last, so where kinds overlap the largest repair shows.
    """
    masks = [(m.type, from_proto(m.mask, channels=(1,))) for m in damage
             if m.type in LOCAL_DAMAGE and m.HasField("mask")]
    if not masks:
        return None
    overlay = np.zeros(masks[0][1].shape + (4,), np.uint8)
    for kind, mask in sorted(masks, key=lambda found: BY_EXTENT.index(found[0])):
        where = mask >= 128
        overlay[where] = (*OVERLAY_COLOURS[kind], 255)
    return overlay


def surplus(count: int, report: common_pb2.DamageReport, options: common_pb2.RestoreOptions, ratio: float) -> int:
    """Extra seeds to generate, so that ranking has something to choose from.

    Only worth it when the candidates can be told apart: there is a face
    whose identity must be kept, or a gender/age the user asked for.
    """
    if not (report.faces or options.gender or options.HasField("age")):
        return 0
    return math.ceil(count * ratio)


@dataclass
class Generated:
    """A candidate between the generator and the result store.

    The image stays the message the answer was parsed into (off the event loop): copying a
    4096x4096 PNG into another message would hold the interpreter ~20 ms each time.
    """

    seed: int
    scores: common_pb2.CandidateScores
    image: common_pb2.Image
    identity_doubtful: bool = False
    #: What its fill replaced, per kind of damage (the generator's PNG masks).
    repaired: list[common_pb2.DamageMask] = field(default_factory=list)

    def result(self, url: str) -> gateway_pb2.CandidateResult:
        """What is announced: where it is stored, and the image's shape without its bytes (gRPC callers get
        the bytes attached from the store by the API that streams them)."""
        shape = common_pb2.Image(width=self.image.width, height=self.image.height, channels=self.image.channels,
                                 encoding=self.image.encoding)
        return gateway_pb2.CandidateResult(seed=self.seed, scores=self.scores, url=url, image=shape,
                                           identity_doubtful=self.identity_doubtful)


def passes_identity(candidate: Generated, min_identity: float) -> bool:
    """Its face, found again or measured where the input's is, still looks like the same person (or there is
    no face)."""
    scores = candidate.scores
    if scores.HasField("identity_similarity"):
        return scores.identity_similarity >= min_identity
    return not scores.HasField("face_found")


def select(candidates: list[Generated], seeds: list[int], count: int, min_identity: float) -> list[Generated]:
    """The best `count` by overall score (seed order breaks ties), those that keep the person first.

    When fewer than `count` pass the identity check, the best of the rest
    fill in, flagged `identity_doubtful`, so the user gets what was asked
    and is told which ones to look at twice.
    """
    ranked = sorted(candidates, key=lambda c: (-c.scores.overall, seeds.index(c.seed)))
    chosen = [c for c in ranked if passes_identity(c, min_identity)][:count]
    for doubtful in [c for c in ranked if not passes_identity(c, min_identity)][:count - len(chosen)]:
        doubtful.identity_doubtful = True
        chosen.append(doubtful)
    return chosen


def first_failure(group: BaseExceptionGroup) -> BaseException:
    """The first real error in a (possibly nested) group of sibling failures."""
    first = group.exceptions[0]
    return first_failure(first) if isinstance(first, BaseExceptionGroup) else first


async def together(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; the first real failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except ExceptionGroup as failures:
        raise first_failure(failures) from None


def rgb_png(image: common_pb2.Image, service: str) -> common_pb2.Image:
    """`image` if it is the RGB PNG the gateway stores; an INTERNAL error naming `service` otherwise."""
    if image.encoding != PNG or image.channels != 3:
        raise UpstreamError(service, grpc.StatusCode.INTERNAL,
                            f"expected an RGB PNG, got encoding {image.encoding} with {image.channels} channels")
    return image


@contextmanager
def stage(name: str, **attributes: object) -> Iterator[None]:
    """Time a stage into its histogram and trace it as a span of the photo's."""
    start = time.perf_counter()
    try:
        with tracer.start_as_current_span(name, attributes={f"revive.{k}": v for k, v in attributes.items()}):
            yield
    finally:
        metrics.STAGE_SECONDS.labels(name).observe(time.perf_counter() - start)


class Pipeline:
    def __init__(self, upstreams: Upstreams, store: ResultStore, config: GatewayConfig) -> None:
        self._upstreams = upstreams
        self._store = store
        self._default_candidates = config.default_candidates
        self._slots = asyncio.Semaphore(config.max_photos_in_flight)
        self._budget = PixelBudget(config.memory_budget_mb * MIB if config.memory_budget_mb else budget_from_limit())
        self._surplus_ratio = config.surplus_ratio
        self._min_identity = config.min_identity
        self._photo_deadline = config.photo_deadline
        self._png_above = config.png_transit_mb * MIB

    async def run(self, request_id: str, photos: list[PhotoUpload], options: common_pb2.RestoreOptions, emit: Emit) -> None:
        """Process every photo concurrently (bounded); each photo's failure is its own."""
        await asyncio.gather(*(self._photo(request_id, photo, options, emit) for photo in photos))

    async def _photo(self, request_id: str, photo: PhotoUpload, options: common_pb2.RestoreOptions, emit: Emit) -> None:
        def event(**fields: object) -> None:
            emit(gateway_pb2.RestoreEvent(photo_index=photo.index, filename=photo.filename, **fields))

        metrics.PHOTOS_WAITING.inc()
        pixels = await asyncio.to_thread(declared_pixels, photo.data)
        async with self._slots, self._budget.photo(pixels):
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
            except OSError as error:  # the results volume: full, read-only, gone
                metrics.PHOTOS.labels("storage_error").inc()
                log.error("cannot store results", extra={"request_id": request_id, "photo": photo.index,
                                                         "error": str(error)})
                event(failed=gateway_pb2.PhotoFailed(
                    code="RESOURCE_EXHAUSTED",
                    message=f"the gateway could not store the results ({error.strerror or error}); try again later"))
            except Exception:
                metrics.PHOTOS.labels("internal_error").inc()
                log.exception("photo failed", extra={"request_id": request_id, "photo": photo.index})
                event(failed=gateway_pb2.PhotoFailed(code="INTERNAL", message="internal error; see the gateway log"))
            finally:
                metrics.PHOTOS_IN_FLIGHT.dec()

    async def _restore(self, request_id: str, photo: PhotoUpload, options: common_pb2.RestoreOptions,
                       event: Callable[..., None]) -> None:
        """The photo's journey, as one span of the job's trace with a child span per stage."""
        with tracer.start_as_current_span("photo", attributes={"revive.photo": photo.index, "revive.job": request_id,
                                                                "revive.bytes": len(photo.data)}):
            await self._journey(request_id, photo, options, event)

    async def _journey(self, request_id: str, photo: PhotoUpload, options: common_pb2.RestoreOptions,
                       event: Callable[..., None]) -> None:
        progress = lambda stage_, fraction: event(progress=gateway_pb2.Progress(stage=stage_, fraction=fraction))  # noqa: E731
        deadline = asyncio.get_running_loop().time() + self._photo_deadline
        progress(gateway_pb2.DECODE, 0.0)
        with stage("decode", photo=photo.index):
            rgb = await asyncio.to_thread(decode_photo, photo.data)
            height, width = rgb.shape[:2]
            trace.get_current_span().set_attributes({"revive.width": width, "revive.height": height})
            image = await asyncio.to_thread(messages.image_field, rgb, self._png_above)
            preview = await asyncio.to_thread(encode_jpeg, rgb)
            del rgb  # the serialised field holds the pixels from here on
            original_url = await asyncio.to_thread(self._store.write, request_id, photo.index, "original.jpg", preview)
            del preview
        progress(gateway_pb2.DECODE, 1.0)

        progress(gateway_pb2.DETECT, 0.0)
        with stage("detect", photo=photo.index, width=width, height=height):
            report = (await self._upstreams.detect(await asyncio.to_thread(messages.detect_request, image),
                                                   deadline)).report
        # What was found, shown while the candidates are made; replaced by what was repaired once they are.
        mask_url = await self._store_overlay(request_id, photo.index, report.masks, "mask.png")
        progress(gateway_pb2.DETECT, 1.0)
        event(damage=damage_summary(report, width, height, mask_url, original_url))

        count = options.candidates if options.HasField("candidates") else self._default_candidates
        base_seed = options.seed if options.HasField("seed") else secrets.randbits(32)
        seeds = [(base_seed + i) % 2**64 for i in range(count + surplus(count, report, options, self._surplus_ratio))]
        factor = applied_upscale(options.upscale if options.HasField("upscale") else 1, width, height)
        base = await asyncio.to_thread(messages.generate_base, image, report, options)
        del image
        kept = await self._generate_and_rank(base, seeds, count, deadline, progress)
        del base
        repaired_url = await self._store_overlay(request_id, photo.index, kept[0].repaired if kept else [],
                                                 "repaired.png")
        if repaired_url:
            event(damage=damage_summary(report, width, height, repaired_url, original_url))
        await self._finish(request_id, photo, kept, seeds, factor, deadline, event, progress)

    async def _store_overlay(self, request_id: str, photo: int, damage: Iterable[common_pb2.DamageMask],
                             name: str) -> str:
        """The URL of the overlay of `damage` stored as `name`; "" when there is nothing to show."""
        overlay = await asyncio.to_thread(damage_overlay, damage)
        if overlay is None:
            return ""
        png = await asyncio.to_thread(encode_png, overlay)
        return await asyncio.to_thread(self._store.write, request_id, photo, name, png)

    async def _generate_and_rank(self, base: bytes, seeds: list[int], count: int, deadline: float,
                                 progress: Callable[[int, float], None]) -> list[Generated]:
        """Candidates for `seeds`, ranked; more seeds (up to `count` more) while too few keep the person."""
        generated: list[Generated] = []
        planned = len(seeds)
        progress(gateway_pb2.GENERATE, 0.0)

        async def candidate(seed: int) -> None:
            with stage("generate", seed=seed):
                request = await asyncio.to_thread(messages.with_seed, base, seed)
                answer = await self._upstreams.generate_one(request, deadline)
            generated.append(Generated(seed, answer.scores, rgb_png(answer.image, "generator"),
                                       repaired=list(answer.repaired)))
            metrics.GENERATED.inc()
            progress(gateway_pb2.GENERATE, len(generated) / planned)

        await together(candidate(seed) for seed in seeds)
        passing = sum(passes_identity(c, self._min_identity) for c in generated)
        if passing < count and any(c.scores.HasField("face_found") for c in generated):
            extra = [(seeds[-1] + 1 + i) % 2**64 for i in range(count)]
            planned += len(extra)
            seeds.extend(extra)
            await together(candidate(seed) for seed in extra)
        return select(generated, seeds, count, self._min_identity)

    async def _finish(self, request_id: str, photo: PhotoUpload, kept: list[Generated],
                      seeds: list[int], factor: int, deadline: float, event: Callable[..., None],
                      progress: Callable[[int, float], None]) -> None:
        """Upscale and store only the candidates kept, in ranking order; each is announced as it is stored.

        The candidates of a photo are upscaled together (UpscaleSet: about one super-resolution's work for
        all of them), or one by one from an upscaler that predates it."""
        done = 0
        if factor > 1:
            progress(gateway_pb2.UPSCALE, 0.0)
        together_done = factor > 1 and len(kept) > 1 and await self._upscale_together(photo, kept, factor, deadline)

        async def finish(chosen: Generated) -> None:
            nonlocal done
            if factor > 1 and not together_done:
                with stage("upscale", photo=photo.index, seed=chosen.seed, factor=factor):
                    request = await asyncio.to_thread(messages.upscale_request, chosen.image, factor)
                    answer = await self._upstreams.upscale(request, deadline)
                chosen.image = rgb_png(answer.image, "upscaler")
            with stage("store", photo=photo.index, seed=chosen.seed):
                # Reading a bytes field copies it: done in the thread that writes it.
                url = await asyncio.to_thread(lambda: self._store.write(
                    request_id, photo.index, f"candidate-{chosen.seed}.png", chosen.image.data))
            metrics.CANDIDATES.inc()
            done += 1
            event(candidate=chosen.result(url))
            if factor > 1:
                progress(gateway_pb2.UPSCALE, done / len(kept))

        await together(finish(chosen) for chosen in kept)
        event(done=gateway_pb2.PhotoDone(candidates=len(kept), ranking=[c.seed for c in kept], upscale=factor))

    async def _upscale_together(self, photo: PhotoUpload, kept: list[Generated], factor: int,
                                deadline: float) -> bool:
        """Every kept candidate upscaled in one UpscaleSet call; False when the upscaler does not offer it."""
        try:
            with stage("upscale", photo=photo.index, factor=factor, candidates=len(kept)):
                request = await asyncio.to_thread(messages.upscale_set_request, [c.image for c in kept], factor)
                answers = await self._upstreams.upscale_set(request, len(kept), deadline)
        except UpstreamError as error:
            if error.code != grpc.StatusCode.UNIMPLEMENTED:
                raise
            log.info("upscaler without UpscaleSet: candidates upscaled one by one", extra={"photo": photo.index})
            return False
        for chosen, answer in zip(kept, answers):
            chosen.image = rgb_png(answer.image, "upscaler")
        return True

"""Photos the generator has recently worked on, kept by content between calls, within a memory budget.

Why: the gateway spreads a photo's candidates over the generator replicas
one seed per call, so a replica sees the same photo several times in a row.
What every candidate of it needs (the damage filled at full resolution, the
faces, their regions, the person mask) costs more than the candidate itself;
kept here, it is computed once per photo and replica instead of once per
seed. The key is a digest of everything the candidates share (photo, masks,
report, options, engine), so a changed option is a different photo.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from revive.v1 import generator_pb2

from services.common.metrics import GENERATOR_PHOTO_CACHE, GENERATOR_PHOTO_CACHE_BYTES
from services.generator.engine import RestorationInput


def photo_key(request: generator_pb2.GenerateRequest) -> bytes:
    """A digest of what a request's candidates share: all of it but the seeds and the output encoding."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (request.image, request.damage, request.options):
        digest.update(part.SerializeToString(deterministic=True))
        digest.update(b"\0")
    digest.update(request.engine.encode())
    return digest.digest()


class PhotoCache:
    """Least recently used photos, evicted while their memory (images and full-size analyses) tops the budget.

    The photo being asked for always stays, even alone over budget: its
    current candidates need it anyway. A budget of 0 keeps nothing. What the
    kept photos held at the last call is exported per engine
    (`revive_generator_photo_cache_bytes`).
    """

    def __init__(self, budget_bytes: int, engine: str = "") -> None:
        self.budget_bytes = budget_bytes
        self._photos: OrderedDict[bytes, RestorationInput] = OrderedDict()
        self._lock = threading.Lock()
        self._held = GENERATOR_PHOTO_CACHE_BYTES.labels(engine)

    def get(self, key: bytes, build: Callable[[], RestorationInput]) -> RestorationInput:
        """The photo kept under `key`, or `build()`'s (decoded and checked outside the lock), now kept."""
        with self._lock:
            photo = self._photos.get(key)
            if photo is not None:
                self._photos.move_to_end(key)
                self._evict(keep=key)  # its analyses may have grown since
        if photo is not None:
            GENERATOR_PHOTO_CACHE.labels("hit").inc()
            return photo
        GENERATOR_PHOTO_CACHE.labels("miss").inc()
        built = build()
        if self.budget_bytes <= 0:
            return built
        with self._lock:
            # Two calls of one new photo may both build it; the first one kept is the one both use.
            photo = self._photos.setdefault(key, built)
            self._photos.move_to_end(key)
            self._evict(keep=key)
        return photo

    def __len__(self) -> int:
        with self._lock:
            return len(self._photos)

    def _evict(self, keep: bytes) -> None:
        # Sizes are read now, not when kept: a photo's analyses grow as its candidates are made.
        sizes = {key: photo.nbytes() for key, photo in self._photos.items()}
        total = sum(sizes.values())
        for key in list(self._photos):
            if total <= self.budget_bytes:
                break
            if key != keep:
                total -= sizes[key]
                del self._photos[key]
        self._held.set(total)

"""What model manifests record: digests of artifacts (TensorRT engine caches are keyed by them too) and paths."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


REPO = Path(__file__).resolve().parents[2]


def shown(path: str | Path) -> str:
    """A path as a manifest shows it: relative to the repository when inside it, so it reads the same anywhere."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)

"""Where model tooling writes and how manifests show paths, so a manifest reads the same on any machine."""

from __future__ import annotations

from pathlib import Path

#: The repository's root: models/, var/ and tests/data/ are found from here.
REPO = Path(__file__).resolve().parents[2]


def shown(path: str | Path) -> str:
    """A path as a manifest shows it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)

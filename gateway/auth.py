"""API keys: who may submit, whose jobs each caller sees, and each key's quotas.

Keys live hashed (SHA-256) in a JSON file, a Kubernetes Secret mounted as a
file in a cluster (`--api-keys-file`); the secret itself is shown once, when
it is made:

    python -m gateway.auth new --file keys.json --name team-a [--admin] [--max-jobs 4] [--photos-per-minute 60]

A caller presents its key as `Authorization: Bearer <key>` (HTTP), as the
`authorization` metadata (gRPC), or through the cookie the web page gets
from POST /v1/session (an <img> or an EventSource cannot send headers). A job
belongs to the key that made it; another key gets 404 for it and its
results, as if it did not exist; an admin key sees every job.

Without a keys file the gateway runs open, and only on a loopback address
(`make run`: nobody else can reach it): on any other address it refuses to
start unless `--allow-anonymous` says that is meant.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

COOKIE = "revive_key"
ANONYMOUS_NAME = "anonymous"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    admin: bool = False
    #: Jobs of this key queued or running at once; 0 = no limit.
    max_jobs: int = 0
    #: Photos this key may submit in any 60 seconds; 0 = no limit.
    photos_per_minute: int = 0

    def may_see(self, owner: str) -> bool:
        return self.admin or owner == self.name


#: The caller of an open gateway (no keys file): sees everything, as before keys existed.
ANONYMOUS = ApiKey(ANONYMOUS_NAME, "", admin=True)


class KeysFileError(Exception):
    """The keys file cannot be used; the message says why."""


class Keys:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_digest = {key.sha256: key for key in keys}
        self._photos: dict[str, deque[float]] = {}

    @classmethod
    def load(cls, path: Path) -> "Keys":
        try:
            entries = json.loads(path.read_text())["keys"]
            return cls([ApiKey(**entry) for entry in entries])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise KeysFileError(f"cannot read API keys from {path}: {error}") from None

    def identify(self, secret: str) -> ApiKey | None:
        return self._by_digest.get(digest(secret)) if secret else None

    def photos_allowed(self, key: ApiKey, count: int, now: float | None = None) -> float:
        """0 when `count` more photos fit in the key's minute (and they are counted), else seconds to wait."""
        if not key.photos_per_minute:
            return 0.0
        now = time.monotonic() if now is None else now
        recent = self._photos.setdefault(key.name, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) + count > key.photos_per_minute:
            if count > key.photos_per_minute:
                return 60.0
            return max(1.0, recent[len(recent) + count - key.photos_per_minute - 1] + 60 - now)
        recent.extend([now] * count)
        return 0.0


def bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.auth", description="Make an API key.")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="add a key to a keys file and print its secret (once)")
    new.add_argument("--file", type=Path, required=True)
    new.add_argument("--name", required=True)
    new.add_argument("--admin", action="store_true", help="sees every job")
    new.add_argument("--max-jobs", type=int, default=0, help="jobs queued or running at once (0 = no limit)")
    new.add_argument("--photos-per-minute", type=int, default=0, help="0 = no limit")
    args = parser.parse_args()
    entries = json.loads(args.file.read_text())["keys"] if args.file.exists() else []
    if any(entry["name"] == args.name for entry in entries):
        parser.error(f"a key named {args.name!r} is already in {args.file}")
    secret = "rv_" + secrets.token_urlsafe(32)
    entries.append(asdict(ApiKey(args.name, digest(secret), args.admin, args.max_jobs, args.photos_per_minute)))
    args.file.write_text(json.dumps({"keys": entries}, indent=2) + "\n")
    args.file.chmod(0o600)
    print(secret)


if __name__ == "__main__":
    main()

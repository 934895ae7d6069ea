"""The `make run` / `make cluster` topology started for a benchmark, on ports apart from a user's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
PORT_OFFSET = 1000
HTTP_PORT, GRPC_PORT = 18180, 18150


#: Gateway flags for a load: more queued jobs and workers than a user's default.
LOAD_FLAGS = ("--max-queued-jobs", "256", "--job-workers", "8")


@contextmanager
def local_cluster(results: str, replicas: int = 1, root: Path = ROOT, flags: tuple[str, ...] = LOAD_FLAGS,
                  **settings: str) -> Iterator[str]:
    """Yields the gateway URL once every upstream is SERVING; stops everything after.

    `root` is the checkout whose code runs (another one: an older version, side by side); `settings`
    become REVIVE_* variables of every process (e.g. memory_budget_mb="1024").
    """
    env = {**os.environ, "PYTHONPATH": f"{root}:{root / 'build' / 'gen'}", "REVIVE_LOG_LEVEL": "warning",
           **{"REVIVE_" + name.upper(): value for name, value in settings.items()}}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.launch", "--replicas", str(replicas), "--port-offset", str(PORT_OFFSET),
         "--http-port", str(HTTP_PORT), "--grpc-port", str(GRPC_PORT), "--results-dir", results, *flags],
        cwd=root, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = launcher.stdout.readline()
        if not line:
            raise RuntimeError("the local cluster did not start; its log is above")
        ready = json.loads(line)
        yield ready["url"].rstrip("/")
    finally:
        # SIGTERM, not SIGINT: a bench started in the background (`cmd &`) passes SIGINT on ignored, and a
        # Python child that starts with SIGINT ignored never raises KeyboardInterrupt.
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(60)

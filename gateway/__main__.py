"""`python -m gateway`: run the gateway until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal

from gateway.app import Gateway
from gateway.config import parse_config
from services.common.logs import setup_logging
from services.common.tracing import setup_tracing


async def serve() -> None:
    config = parse_config()
    setup_logging(config.log_level)
    setup_tracing("gateway", config.otlp_endpoint)
    gateway = await Gateway(config).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await gateway.stop()


if __name__ == "__main__":
    asyncio.run(serve())

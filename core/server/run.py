"""Run the app under uvicorn, one process or several workers sharing one listening socket."""

from __future__ import annotations

import copy
import socket
import sys
from typing import Any

# Request lines and headers up to 1 MiB, so a long query (a name of 1024 characters,
# percent-encoded) gets a clear 422 from the app instead of a dropped connection. Past it, h11
# answers 400 and closes, and a client still sending sees the connection reset.
MAX_REQUEST_HEAD = 1 << 20


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus headwater's own warnings printed live by every worker."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["headwater"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(host: str, port: int, workers: int, log_level: str, access_log: bool) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "headwater.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        log_config=log_config(),
        timeout_graceful_shutdown=10,
        server_header=False,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
    )
    server = uvicorn.Server(config)
    if workers <= 1:
        server.run()
        if not server.started:
            sys.exit(3)
        return
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        # uvicorn makes the shared socket with proto 0, so asyncio never sets TCP_NODELAY on the
        # connections it accepts, and every response with a body waits ~40 ms for a delayed ACK.
        # Re-wrapping the descriptor lets the kernel report IPPROTO_TCP.
        sock = socket.socket(fileno=sock.detach())
        sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()

"""Running the app: the listening socket, uvicorn's settings, and a server in a background thread (tests, bench).

One function binds every listening socket, for the command line and the background server alike.
"""

from __future__ import annotations

import dataclasses
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from pipeline.errors import UserError
from serving.settings import ServerSettings


def bind(host: str, port: int, option: str = "--port") -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one); a UserError naming ``option`` if it cannot be.

    ``proto`` must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on such sockets, and without it
    Nagle's algorithm and delayed ACKs add 40 ms to every answer.
    """
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror} (pick another {option} or --host)") from None
    return sock


@dataclasses.dataclass
class BackgroundServer:
    """A uvicorn server running in a thread of this process (tests, benchmarks); ``stop()`` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def make_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """uvicorn settings shared by the command line and the tests: no per-request access log (it costs ~10% here)."""
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=5)


def serve_in_background(app: ASGIApp) -> BackgroundServer:
    """Starts ``app`` on a free port of the default host (loopback) and returns once it accepts connections."""
    host = ServerSettings().host
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(make_config(app, host, port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    for _ in range(600):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    if not server.started:
        raise RuntimeError("the server did not start")
    return BackgroundServer(server=server, thread=thread, url=f"http://{host}:{port}")

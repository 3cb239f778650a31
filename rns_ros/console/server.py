"""Serving the console: the web app on a socket bound before start (so the printed URL has the real
port, also for port 0), uvicorn on top, and the ROS node spinning beside it.

    server = ConsoleServer(node)            # node: a ConsoleNode being spun by an executor
    server.start_in_thread(); print(server.url); ...; server.stop()    # tests, benchmarks
    server.run()                            # rns_console: until SIGINT / SIGTERM
"""
from __future__ import annotations

import socket
import threading

import uvicorn

from rns_ros.console.app import build_app
from rns_ros.console.node import ConsoleNode
from rns_ros.console.security import new_token


class ConsoleServer:
    """The web server of one ConsoleNode. The token is the node's `token` parameter, or a new
    random one (`self.token`)."""

    def __init__(self, node: ConsoleNode):
        config = node.config
        self.token = config.token or new_token()
        self.socket = socket.create_server((config.host, config.port))
        self.host, self.port = config.host, self.socket.getsockname()[1]
        self.app = build_app(node, self.token)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=2))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to open: it carries the token (the page then keeps it in a cookie)."""
        return f"{self.base_url}/?token={self.token}"

    def run(self) -> None:
        """Serve until uvicorn is told to stop (its signal handlers: SIGINT, SIGTERM)."""
        self.server.run(sockets=[self.socket])

    def start_in_thread(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self.run, name="rns-console-http", daemon=True)
        self._thread.start()
        started = threading.Event()

        def check():
            return self.server.started or not self._thread.is_alive()
        while not check():
            started.wait(0.01)
        if not self.server.started:
            raise RuntimeError("the console's web server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()

"""The HTTP transport: a threaded keep-alive server on loopback around SandboxApp."""

import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .app import LoggedRequest, SandboxApp
from .config import SandboxConfig
from .data import Dataset
from .reply import Reply, json_reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a timeout in a test, a killed run) is not a sandbox error.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); loopback needs none.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)

    def close_connections(self) -> None:
        """Ends idle keep-alive connections so their threads finish on stop."""
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every reply carries Content-Length
    server_version = "completions-sandbox"
    timeout = 300  # drop keep-alive connections idle this long
    server: _Server
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, written directly to send head and body at once

    def setup(self) -> None:
        super().setup()
        # Small replies must not wait on Nagle + delayed ACK (40 ms per page).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # no per-request lines on stderr

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        arrived = time.time()
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            bucket, reply = self.server.app.handle(
                self.command, split.path, params, cast(Mapping[str, str], self.headers), body
            )
        except Exception:  # a sandbox bug must surface, not hang the client
            traceback.print_exc(file=sys.stderr)
            bucket, reply = None, json_reply(500, {"detail": "sandbox error"})
        if bucket is not None:  # counted before the reply leaves, so a client reading stats sees it
            timing = (arrived, time.time(), self.headers.get("User-Agent", ""))
            self.server.app.record(bucket, reply.status, reply.connection, timing)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        # Head and body in one write: one segment for small pages.
        self._headers_buffer.append(b"\r\n")
        if reply.cut_at is None:
            self._headers_buffer.append(reply.body)
            self.flush_headers()
            return
        # Fault: promise the whole body, send part of it, then hang up.
        self._headers_buffer.append(reply.body[: reply.cut_at])
        self.flush_headers()
        self.close_connection = True


class Sandbox:
    """A running sandbox; use `start_sandbox` and stop it (or use `with`)."""

    def __init__(self, config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.app = SandboxApp(config)  # credentials from os.environ, else documented defaults
        # Changes the running sandbox (SandboxApp.update; `now=None` switches back to the real clock).
        self.update = self.app.update
        self._server = _Server((host, port), self.app)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    @property
    def dataset(self) -> Dataset:
        return self.app.dataset

    @property
    def credentials(self) -> dict[str, str]:
        """The credentials this sandbox accepts, keyed by the product's variable name."""
        return dict(self.app.credentials)

    def connection_credentials(self, provider: str, connection: str) -> dict[str, str]:
        """One configured connection's credentials, keyed by env var name (config.connection_credentials)."""
        return self.app.connection_creds.of(provider, connection)

    def start(self) -> "Sandbox":
        self._thread.start()
        # Encoding is cached per record; doing it now keeps first walks fast.
        threading.Thread(target=self.dataset.warm, args=(self._stopping,), name="sandbox-warm", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.close_connections()
        self._server.server_close()

    def stats(self) -> dict[str, dict[str, Any]]:
        return self.app.stats()

    def request_log(self) -> list[LoggedRequest]:
        """Every answered request so far (the newest 200,000), in answer order."""
        return self.app.logged_requests()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_sandbox(config: SandboxConfig | None = None, *, port: int = 0) -> Sandbox:
    """Generate the data, bind 127.0.0.1:`port` (0: a free one) and serve in a thread."""
    return Sandbox(config or SandboxConfig(), port=port).start()

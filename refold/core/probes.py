"""What a process answers on its metrics port: `/metrics`, `/healthz` (live) and `/ready`.

`Probes` holds the process's state: it is *live* until it records a fatal error or its main
loop stops beating for `stall_seconds` (a stuck process is better restarted); it is *ready*
when no condition holds it back. Conditions are named, set and cleared by the process
(`"starting"`, `"restoring"` ...), and `/ready` lists those that hold with their reasons.

Kubernetes: use `/healthz` for the liveness probe and `/ready` for readiness (a worker that is
restoring state or has no model or popularity to serve yet is alive but not ready).

>>> probes = Probes(starting="catalog not read yet")
>>> probes.ready
False
>>> probes.clear("starting"); probes.ready, probes.live
(True, True)
>>> probes.hold("restoring", "restoring 2 partition(s)"); probes.status()["waiting_for"]
{'restoring': 'restoring 2 partition(s)'}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

STALL_SECONDS = 600.0
"""A main loop silent for this long counts as stuck (far above any batch, restore step or
transaction timeout)."""


class Probes:
    """Liveness and readiness of one process; thread-safe."""

    def __init__(self, stall_seconds: float = STALL_SECONDS, clock: Callable[[], float] = (
            time.monotonic), **conditions: str) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[str, str] = dict(conditions)
        self._busy: set[str] = set()
        self._fatal: str | None = None
        self._beat = clock()

    def hold(self, name: str, reason: str, busy: bool = False) -> None:
        """Not ready because of `name` (replaces its reason if it holds already); `busy`: the
        main loop is doing long work meanwhile (a restore), so its silence is no stall."""
        with self._lock:
            self._waiting[name] = reason
            if busy:
                self._busy.add(name)

    def clear(self, name: str) -> None:
        with self._lock:
            self._waiting.pop(name, None)
            self._busy.discard(name)

    @contextmanager
    def working(self, name: str) -> Iterator[None]:
        """Long work on the main loop (a training) that keeps the process live and ready."""
        with self._lock:
            self._busy.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(name)
            self.beat()

    def beat(self) -> None:
        """The main loop is making progress (call it every iteration, and during long work)."""
        self._beat = self._clock()

    def fail(self, reason: str) -> None:
        """A fatal error: the process is about to stop; report it as not live."""
        with self._lock:
            self._fatal = reason

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._waiting and self._fatal is None

    def _stalled(self) -> bool:
        return not self._busy and self._clock() - self._beat >= self.stall_seconds

    @property
    def live(self) -> bool:
        return self._fatal is None and not self._stalled()

    def status(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {"live": self._fatal is None, "ready": not self._waiting,
                                   "waiting_for": dict(self._waiting)}
            fatal = self._fatal
        if fatal is not None:
            out["error"] = fatal
            out["ready"] = False
        elif self._stalled():
            out["live"] = False
            out["error"] = f"main loop silent for {self._clock() - self._beat:.0f} s"
        return out


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes arrive every few seconds: no access log."""


def wsgi_app(probes: Probes, registry: CollectorRegistry = REGISTRY) -> Callable:
    """The WSGI app: /metrics (Prometheus), /healthz, /ready (JSON, 200 or 503)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/ready"):
            status = probes.status()
            ok = status["live"] if path == "/healthz" else status["ready"] and status["live"]
            body = json.dumps(status).encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
            return [body]
        if path == "/metrics" or path == "/":
            return metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics, /healthz or /ready\n"]

    return app


def serve_http(host: str, port: int, probes: Probes,
               registry: CollectorRegistry = REGISTRY) -> tuple[WSGIServer, int]:
    """Serve `wsgi_app` on `host:port` (0: a free port) from a daemon thread; returns the
    server and the port it listens on. Raises `OSError` when the port is taken."""
    server = make_server(host, port, wsgi_app(probes, registry), _Server,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="refold-http", daemon=True).start()
    return server, int(server.server_port)

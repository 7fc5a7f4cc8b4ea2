"""Serving and pushing a running pipeline's metrics (Prometheus pull and push).

``MetricsExporter`` follows one run: before the runner hands back a result it
reports the standard counters at 0; while a streaming run goes on it queries
the live result on every scrape or push; once the run ends it keeps the final
values. ``--metrics_port`` serves them on ``/metrics``; ``--pushgateway``
PUTs them to ``/metrics/job/<job>/app/<app>`` every ``--push_interval``
seconds and once more at the end, so a batch run's totals always arrive.

A batch run on the DirectRunner finishes inside ``Pipeline.run()``, before
any live result exists, so a scrape mid-run sees zeros; ``--metrics_linger``
keeps the final values on ``/metrics`` after the run until they have been
scraped once (or the linger time passes).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apache_beam.runners.runner import PipelineState

from beamstream.ops.prometheus import CONTENT_TYPE, render

_LOG = logging.getLogger(__name__)
PUSH_TIMEOUT_S = 10.0


class MetricsExporter:
    """The metrics of one run, rendered on demand; served and/or pushed."""

    def __init__(
        self,
        app: str,
        job: str,
        port: int | None = None,
        pushgateway: str | None = None,
        push_interval: float = 10.0,
        linger: float = 0.0,
        host: str = "",
    ):
        self.app, self.job = app, job
        self._port, self._host = port, host
        self._gateway = pushgateway.rstrip("/") if pushgateway else None
        self._interval = max(push_interval, 0.5)
        self._linger = linger
        self._lock = threading.Lock()
        self._result: Any = None
        self._final: str | None = None
        self._scraped_final = threading.Event()
        self._stop = threading.Event()
        self._finish_lock = threading.Lock()
        self._finished = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ values

    def attach(self, result: Any) -> None:
        """The runner's result: queried live from now on (streaming runs)."""
        with self._lock:
            self._result = result

    def text(self) -> str:
        """The current exposition: final values, live values, or zeros."""
        with self._lock:
            final, result = self._final, self._result
        if final is not None:
            return final
        query = result.metrics().query() if result is not None else {}
        return render(query, self.app, self.job)

    def finish(self, result: Any | None = None) -> None:
        """Freezes the final values, pushes them once, lingers, and stops serving.

        Idempotent: a second caller waits for the first to complete.
        """
        with self._finish_lock:
            if self._finished:
                return
            if result is not None:
                self.attach(result)
            final = self.text()
            with self._lock:
                self._final = final
            self._stop.set()
            if self._gateway:
                self.push()
            if self._server is not None and self._linger > 0:
                self._scraped_final.wait(self._linger)
            self.close()
            self._finished = True

    def finish_when_done(self, result: Any, poll_s: float = 0.5) -> None:
        """Follows ``result`` from a thread and finishes once it reaches a terminal state."""
        self.attach(result)

        def watch() -> None:
            while is_running(result) and not self._finished:
                time.sleep(poll_s)
            self.finish()

        threading.Thread(target=watch, name="beamstream-metrics-watch", daemon=True).start()

    # ------------------------------------------------------------------ pull

    @property
    def port(self) -> int | None:
        """The port /metrics is served on (the real one when asked for port 0)."""
        return self._server.server_address[1] if self._server is not None else self._port

    def start(self) -> MetricsExporter:
        if self._port is not None:
            self._server = ThreadingHTTPServer((self._host, self._port), _handler(self))
            self._server.daemon_threads = True
            self._spawn("beamstream-metrics-http", self._server.serve_forever)
            _LOG.info("serving metrics on http://%s:%d/metrics", self._host or "0.0.0.0", self.port)
        if self._gateway:
            self._spawn("beamstream-metrics-push", self._push_loop)
        return self

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _served(self, text: str) -> None:
        with self._lock:
            if self._final is not None and text is self._final:
                self._scraped_final.set()

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=PUSH_TIMEOUT_S + 1)
        self._threads = []

    # ------------------------------------------------------------------ push

    def push_url(self) -> str:
        return f"{self._gateway}/metrics/{_segment('job', self.job)}/{_segment('app', self.app)}"

    def push(self) -> bool:
        """PUTs the current values to the Pushgateway; a failure is logged, not raised."""
        body = self.text().encode("utf-8")
        request = urllib.request.Request(
            self.push_url(), data=body, method="PUT", headers={"Content-Type": CONTENT_TYPE}
        )
        try:
            with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT_S) as response:
                response.read()
            return True
        except (urllib.error.URLError, OSError) as exc:
            _LOG.warning("metrics push to %s failed: %s", self._gateway, exc)
            return False

    def _push_loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                live = self._result is not None and self._final is None
            if live:  # nothing to say before the runner hands back a result
                self.push()


def _segment(label: str, value: str) -> str:
    """``label/value`` of a grouping key; values with '/' use the Pushgateway's base64 form."""
    if "/" in value or not value:
        encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii") or "="
        return f"{label}@base64/{encoded}"
    return f"{label}/{urllib.parse.quote(value, safe='')}"


def _handler(exporter: MetricsExporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "metrics are on /metrics")
                return
            try:
                text = exporter.text()
            except Exception as exc:  # a failing query must not kill the server thread
                _LOG.warning("metrics query failed: %s", exc)
                self.send_error(500, f"metrics query failed: {type(exc).__name__}")
                return
            body = text.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            exporter._served(text)  # noqa: SLF001 - the handler is part of the exporter

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            _LOG.debug("metrics http: " + format, *args)

    return Handler


def is_running(result: Any) -> bool:
    state = getattr(result, "state", None)
    return state is not None and not PipelineState.is_terminal(state)

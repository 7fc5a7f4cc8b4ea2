"""Serving and pushing a running pipeline's metrics (Prometheus pull and push).

``MetricsExporter`` follows one run: before the runner hands back a result it
reports the standard counters at 0; while a streaming run goes on it queries
the live result on every scrape or push; once the run ends it keeps the final
values. ``--metrics_port`` serves them with ``prometheus_client``'s
``start_http_server`` (text or OpenMetrics by the ``Accept`` header, gzip
when asked); ``--pushgateway`` PUTs them with ``push_to_gateway`` under the
grouping key ``job/<job>/app/<app>`` every ``--push_interval`` seconds and
once more at the end, so a batch run's totals always arrive.

A batch run on the DirectRunner finishes inside ``Pipeline.run()``, before
any live result exists, so a scrape mid-run sees zeros; ``--metrics_linger``
keeps the final values on ``/metrics`` after the run until they have been
scraped once (or the linger time passes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from apache_beam.runners.runner import PipelineState
from prometheus_client import start_http_server
from prometheus_client.exposition import push_to_gateway
from prometheus_client.registry import Collector, CollectorRegistry

from beamstream.ops.prometheus import families

_LOG = logging.getLogger(__name__)
PUSH_TIMEOUT_S = 10.0
SCRAPE_GRACE_S = 0.5


class MetricsExporter(Collector):
    """The metrics of one run as a ``prometheus_client`` collector; served and/or pushed."""

    def __init__(
        self,
        app: str,
        job: str,
        port: int | None = None,
        pushgateway: str | None = None,
        push_interval: float = 10.0,
        linger: float = 0.0,
        host: str = "",
        namespace: str = "",
    ):
        self.app, self.job, self.namespace = app, job, namespace
        self._port, self._host = port, host
        self._gateway = pushgateway.rstrip("/") if pushgateway else None
        self._interval = max(push_interval, 0.5)
        self._linger = linger
        self._lock = threading.Lock()
        self._result: Any = None
        self._final: list | None = None
        self._scraped_final = threading.Event()
        self._stop = threading.Event()
        self._finish_lock = threading.Lock()
        self._finished = False
        self._server: Any = None
        self._threads: list[threading.Thread] = []
        # Pushes read this registry; scrapes read one that also notes a scrape
        # of the final values (for --metrics_linger).
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._scrape_registry = CollectorRegistry(auto_describe=False)
        self._scrape_registry.register(_Scrape(self))

    # ------------------------------------------------------------------ values

    def attach(self, result: Any) -> None:
        """The runner's result: queried live from now on (streaming runs)."""
        with self._lock:
            self._result = result

    def collect(self) -> Iterator:
        """The current metric families: final values, live values, or zeros."""
        yield from self._families()

    def _families(self) -> list:
        return self._current()[0]

    def _current(self) -> tuple[list, bool]:
        """(families, whether they are the run's final values)."""
        with self._lock:
            final, result = self._final, self._result
        if final is not None:
            return final, True
        try:
            query = result.metrics().query() if result is not None else {}
        except Exception as exc:  # the scrape or push fails; the server thread lives on
            _LOG.warning("metrics query failed: %s: %s", type(exc).__name__, exc)
            raise
        done = result is not None and not is_running(result)
        return families(query, self.app, self.job, self.namespace), done

    def finish(self, result: Any | None = None) -> None:
        """Freezes the final values, pushes them once, lingers, and stops serving.

        Idempotent: a second caller waits for the first to complete.
        """
        with self._finish_lock:
            if self._finished:
                return
            if result is not None:
                self.attach(result)
            final = self._families()
            with self._lock:
                self._final = final
            self._stop.set()
            if self._gateway:
                self.push()
            lingering = self._server is not None and self._linger > 0
            if lingering and self._scraped_final.wait(self._linger):
                # Collected, not yet necessarily written: let the response go out.
                time.sleep(SCRAPE_GRACE_S)
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
            self._server, thread = start_http_server(
                self._port, addr=self._host or "0.0.0.0", registry=self._scrape_registry
            )
            self._threads.append(thread)
            _LOG.info("serving metrics on http://%s:%d/metrics", self._host or "0.0.0.0", self.port)
        if self._gateway:
            self._spawn("beamstream-metrics-push", self._push_loop)
        return self

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _scraped(self) -> None:
        """A scrape collected the final values (frozen, or read from a finished run)."""
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

    def push(self) -> bool:
        """PUTs the current values to the Pushgateway, grouped by ``job`` and ``app``.

        A failure is logged, not raised.
        """
        assert self._gateway is not None, "no --pushgateway"
        try:
            push_to_gateway(
                self._gateway,
                job=self.job,
                registry=self.registry,
                grouping_key={"app": self.app},
                timeout=PUSH_TIMEOUT_S,
            )
            return True
        except Exception as exc:  # URLError, HTTPError, OSError, a failed query
            _LOG.warning("metrics push to %s failed: %s", self._gateway, exc)
            return False

    def _push_loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                live = self._result is not None and self._final is None
            if live:  # nothing to say before the runner hands back a result
                self.push()


class _Scrape(Collector):
    """What ``/metrics`` serves: the exporter's families, noting when the final ones went out."""

    def __init__(self, exporter: MetricsExporter):
        self._exporter = exporter

    def collect(self) -> Iterator:
        served, final = self._exporter._current()  # noqa: SLF001 - part of the exporter
        yield from served
        if final:
            self._exporter._scraped()  # noqa: SLF001


def is_running(result: Any) -> bool:
    state = getattr(result, "state", None)
    return state is not None and not PipelineState.is_terminal(state)

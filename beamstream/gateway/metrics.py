"""The gateway's metrics, as ``prometheus_client`` metrics in a registry of their own.

Names follow the project's counters (``messages_produced``, ``message_errors``
by reason) with the client's ``_total`` suffix on counters. Format, escaping,
HELP/TYPE and content negotiation (text or OpenMetrics by the ``Accept``
header) are the library's. One registry per application, so two gateways in a
process (tests) do not share counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """Requests by route and status, messages produced, errors by reason, latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "ingest_requests",
            "HTTP requests answered, by route and status code.",
            ("route", "code"),
            registry=self.registry,
        )
        self._produced = Counter(
            "messages_produced",
            "Events published and confirmed by the broker.",
            registry=self.registry,
        )
        self._errors = Counter(
            "message_errors",
            "Events or requests not published, by reason.",
            ("reason",),
            registry=self.registry,
        )
        self._latency = Histogram(
            "ingest_request_duration_seconds",
            "Time to answer POST /v1/events.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def request(self, route: str, status: int, seconds: float | None = None) -> None:
        self._requests.labels(route=route, code=str(status)).inc()
        if seconds is not None:
            self._latency.observe(seconds)

    def produced(self, count: int) -> None:
        self._produced.inc(count)

    def error(self, reason: str, count: int = 1) -> None:
        self._errors.labels(reason=reason).inc(count)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, Content-Type) in the format the ``Accept`` header asks for."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

"""The gateway's metrics in the Prometheus text exposition format (version 0.0.4).

Hand-written because it is four metrics and a dozen lines of format, and the
``prometheus_client`` package would be one more dependency for it. Updated
only from the event loop thread, so no locks.

Names follow the project's counters (``messages_produced``, ``message_errors``
by reason) with Prometheus' ``_total`` suffix.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class GatewayMetrics:
    """Requests by route and status, messages produced, errors by reason, latency."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.messages_produced = 0
        self.message_errors: dict[str, int] = defaultdict(int)
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # last: +Inf only
        self._latency_sum = 0.0
        self._latency_count = 0

    def request(self, route: str, status: int, seconds: float | None = None) -> None:
        self.requests[(route, status)] += 1
        if seconds is not None:
            self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def produced(self, count: int) -> None:
        self.messages_produced += count

    def error(self, reason: str, count: int = 1) -> None:
        self.message_errors[reason] += count

    def render(self) -> str:
        lines = [
            "# HELP ingest_requests_total HTTP requests answered, by route and status code.",
            "# TYPE ingest_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'ingest_requests_total{{route="{_label(route)}",code="{status}"}} {n}')
        lines += [
            "# HELP messages_produced_total Events published and confirmed by the broker.",
            "# TYPE messages_produced_total counter",
            f"messages_produced_total {self.messages_produced}",
            "# HELP message_errors_total Events or requests not published, by reason.",
            "# TYPE message_errors_total counter",
        ]
        for reason, n in sorted(self.message_errors.items()):
            lines.append(f'message_errors_total{{reason="{_label(reason)}"}} {n}')
        lines += [
            "# HELP ingest_request_duration_seconds Time to answer POST /v1/events.",
            "# TYPE ingest_request_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self._bucket_counts):
            cumulative += n
            lines.append(f'ingest_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
        lines += [
            f'ingest_request_duration_seconds_bucket{{le="+Inf"}} {self._latency_count}',
            f"ingest_request_duration_seconds_sum {self._latency_sum}",
            f"ingest_request_duration_seconds_count {self._latency_count}",
        ]
        return "\n".join(lines) + "\n"

"""Beam metric results as Prometheus metric families (``prometheus_client``).

The exported names and labels are the contract of the seed library these
pipelines replace, which dashboards and alerts are written against:
``messages_consumed``, ``messages_produced`` and ``message_errors`` (labelled
``exception``), each with ``app`` and ``job`` labels, beside ``dead_letters``
and ``late_records``. Counters get the Prometheus client's ``_total`` suffix
(``messages_consumed_total``). ``namespace`` (``--metrics_namespace``) may add
a prefix: ``NS_messages_consumed_total``.

Beam counters have a namespace and a name but no labels, so beamstream
encodes the one label it needs in the name (``message_errors:<Type>``, see
``beamstream.counters``); here that becomes
``message_errors_total{exception="<Type>"}``. Every other counter of the
``beamstream`` Beam namespace ``x`` becomes ``x_total``. Counters reported by
several steps are summed: Prometheus wants one series per metric and label
set. Format, escaping, HELP/TYPE lines and content negotiation are
``prometheus_client``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from beamstream import counters

ERROR_LABEL = "exception"
BASE_LABELS = ("app", "job")

# Always exported (as 0 until counted) so dashboards and alerts see the series.
# ``message_errors`` has no series until an exception type is counted.
STANDARD_COUNTERS = (
    counters.MESSAGES_CONSUMED,
    counters.MESSAGES_PRODUCED,
    counters.MESSAGE_ERRORS,
    counters.DEAD_LETTERS,
)
_HELP = {
    counters.MESSAGES_CONSUMED: "Messages read from the source.",
    counters.MESSAGES_PRODUCED: "Messages or rows written to the sink.",
    counters.MESSAGE_ERRORS: "Messages that failed, by exception type.",
    counters.DEAD_LETTERS: "Records sent to the dead-letter output.",
    counters.LATE_RECORDS: "Records too late for their window (also dead letters).",
}
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
NAMESPACE_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Prometheus name (without the counter suffix) -> {exception type or None: value}
Counts = dict[str, dict[str | None, float]]


def metric_name(name: str) -> str:
    """A Prometheus-legal metric name part: anything else becomes ``_``."""
    clean = _INVALID.sub("_", name)
    return clean if clean and not clean[0].isdigit() else f"_{clean}"


def full_name(name: str, namespace: str = "") -> str:
    """``name`` with the optional ``namespace`` prefix: ``NS_name``, as prometheus_client joins."""
    return f"{namespace}_{name}" if namespace else name


def _value(result: Any) -> Any:
    """Committed value where the runner reports one, else attempted."""
    committed = getattr(result, "committed", None)
    return committed if committed is not None else getattr(result, "attempted", None)


def _ours(results: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """(Beam metric name, value) of the ``beamstream``-namespace results that have a value."""
    for result in results:
        metric = result.key.metric
        if metric.namespace != counters.NAMESPACE:
            continue
        value = _value(result)
        if value is not None:
            yield metric.name, value


def counter_values(counter_results: Iterable[Any]) -> Counts:
    """Sums counter results per Prometheus series; ``message_errors`` by exception type."""
    counts: Counts = {name: {} for name in STANDARD_COUNTERS}
    for name in STANDARD_COUNTERS:
        if name != counters.MESSAGE_ERRORS:
            counts[name][None] = 0.0
    for beam_name, value in _ours(counter_results):
        name, sep, exception = beam_name.partition(":")
        label: str | None = None
        if sep and name == counters.MESSAGE_ERRORS:
            label = exception
        elif sep:
            name = beam_name
        series = counts.setdefault(metric_name(name), {})
        series[label] = series.get(label, 0.0) + float(value)
    return counts


def families(
    query: Mapping[str, Iterable[Any]], app: str, job: str, namespace: str = ""
) -> list[Metric]:
    """Metric families for a ``MetricResults.query()`` result (``{}`` gives the zeros)."""
    base = [app, job]
    out: list[Metric] = []
    for name, series in sorted(counter_values(query.get("counters", ())).items()):
        labels = [*BASE_LABELS, ERROR_LABEL] if name == counters.MESSAGE_ERRORS else BASE_LABELS
        family = CounterMetricFamily(
            full_name(name, namespace),
            _HELP.get(name, f"beamstream counter {name}."),
            labels=labels,
        )
        for exception, value in sorted(series.items(), key=lambda kv: kv[0] or ""):
            family.add_metric(base if exception is None else [*base, exception], value)
        out.append(family)

    latest: dict[str, float] = {}
    for beam_name, value in _ours(query.get("gauges", ())):
        if getattr(value, "value", None) is not None:
            latest[metric_name(beam_name)] = float(value.value)
    for name, gauge in sorted(latest.items()):
        gauge_family = GaugeMetricFamily(
            full_name(name, namespace), f"beamstream gauge {name}.", labels=BASE_LABELS
        )
        gauge_family.add_metric(base, gauge)
        out.append(gauge_family)

    totals: dict[str, tuple[int, float]] = {}
    for beam_name, value in _ours(query.get("distributions", ())):
        count, total = totals.get(metric_name(beam_name), (0, 0.0))
        totals[metric_name(beam_name)] = (count + int(value.count), total + float(value.sum))
    for name, (count, total) in sorted(totals.items()):
        summary = SummaryMetricFamily(
            full_name(name, namespace), f"beamstream distribution {name}.", labels=BASE_LABELS
        )
        summary.add_metric(base, count_value=count, sum_value=total)
        out.append(summary)
    return out

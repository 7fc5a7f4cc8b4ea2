"""Beam metrics as the Prometheus text exposition format.

Beam counters have a namespace and a name but no labels, so beamstream
encodes the one label it needs in the name (``message_errors:<Type>``, see
``beamstream.counters``). Here that becomes the Prometheus form
``beamstream_message_errors_total{error_type="<Type>"}``; every other counter
of the ``beamstream`` namespace becomes ``beamstream_<name>_total``. Every
sample carries ``app`` and ``job`` labels. Counters reported by several steps
are summed: Prometheus wants one series per metric and label set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from beamstream import counters

PREFIX = "beamstream"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Always exported (as 0 until counted) so dashboards and alerts see the series.
STANDARD_COUNTERS = (
    counters.MESSAGES_CONSUMED,
    counters.MESSAGES_PRODUCED,
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

# (metric name without prefix/suffix, frozen extra labels) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_name(name: str) -> str:
    """A Prometheus-legal metric name part: anything else becomes ``_``."""
    clean = _INVALID.sub("_", name)
    return clean if clean and not clean[0].isdigit() else f"_{clean}"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(result: Any) -> Any:
    """Committed value where the runner reports one, else attempted."""
    committed = getattr(result, "committed", None)
    return committed if committed is not None else getattr(result, "attempted", None)


def counter_samples(counter_results: Iterable[Any]) -> Samples:
    """Sums ``beamstream``-namespace counter results per Prometheus series."""
    samples: Samples = {name: 0.0 for name in ((n, ()) for n in STANDARD_COUNTERS)}
    for result in counter_results:
        metric = result.key.metric
        if metric.namespace != counters.NAMESPACE:
            continue
        value = _value(result)
        if value is None:
            continue
        name, sep, error_type = metric.name.partition(":")
        labels: tuple[tuple[str, str], ...] = ()
        if sep and name == counters.MESSAGE_ERRORS:
            labels = (("error_type", error_type),)
        elif sep:
            name = metric.name
        key = (metric_name(name), labels)
        samples[key] = samples.get(key, 0.0) + float(value)
    return samples


def render(query: Mapping[str, Iterable[Any]], app: str, job: str) -> str:
    """The text format for a ``MetricResults.query()`` result."""
    base = (("app", app), ("job", job))
    lines: list[str] = []
    samples = counter_samples(query.get("counters", ()))
    for name in sorted({n for n, _ in samples}):
        full = f"{PREFIX}_{name}_total"
        lines.append(f"# HELP {full} {_HELP.get(name, f'beamstream counter {name}.')}")
        lines.append(f"# TYPE {full} counter")
        for (n, extra), value in sorted(samples.items()):
            if n == name:
                lines.append(f"{full}{_labels(base + extra)} {_number(value)}")
    lines += _gauges(query.get("gauges", ()), base)
    lines += _distributions(query.get("distributions", ()), base)
    return "\n".join(lines) + "\n"


def _gauges(results: Iterable[Any], base) -> list[str]:
    latest: dict[str, float] = {}
    for result in results:
        if result.key.metric.namespace != counters.NAMESPACE:
            continue
        value = _value(result)
        if value is not None and getattr(value, "value", None) is not None:
            latest[metric_name(result.key.metric.name)] = float(value.value)
    lines = []
    for name, value in sorted(latest.items()):
        full = f"{PREFIX}_{name}"
        lines += [f"# TYPE {full} gauge", f"{full}{_labels(base)} {_number(value)}"]
    return lines


def _distributions(results: Iterable[Any], base) -> list[str]:
    totals: dict[str, list[float]] = {}
    for result in results:
        if result.key.metric.namespace != counters.NAMESPACE:
            continue
        value = _value(result)
        if value is None:
            continue
        entry = totals.setdefault(metric_name(result.key.metric.name), [0.0, 0.0])
        entry[0] += float(value.count)
        entry[1] += float(value.sum)
    lines = []
    for name, (count, total) in sorted(totals.items()):
        full = f"{PREFIX}_{name}"
        lines += [
            f"# TYPE {full} summary",
            f"{full}_count{_labels(base)} {_number(count)}",
            f"{full}_sum{_labels(base)} {_number(total)}",
        ]
    return lines


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{escape_label(str(v))}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_text(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a text exposition (as this module writes it): for tests and checks."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
    pair = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = sample.match(line)
        if not match:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        labels = tuple(sorted(pair.findall(match.group(2) or "")))
        found[(match.group(1), labels)] = float(match.group(3))
    return found

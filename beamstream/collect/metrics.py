"""Metric functions: a registry of name → function, built-ins measured with psutil.

A metric function takes no arguments and returns the samples it measured now.
The producer calls the functions a config file names (``create_metric_functions``)
and adds host, time and a timer per function. New metrics are one decorated
function away::

    from beamstream.collect.metrics import Sample, register_metric

    @register_metric("open_files")
    def open_files():
        return [Sample("open_files", "gauge", len(psutil.Process().open_files()))]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psutil

GAUGE = "gauge"
COUNTER = "counter"
TIMER = "timer"
METRIC_TYPES = (GAUGE, COUNTER, TIMER)


@dataclass(frozen=True)
class Sample:
    """One measured value; ``counter`` values only grow (cumulative since boot)."""

    name: str
    type: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


MetricFunction = Callable[[], Iterable[Sample]]

REGISTRY: dict[str, MetricFunction] = {}


def register_metric(name: str) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator: makes a function available to ``--config`` under ``name``."""

    def decorate(function: MetricFunction) -> MetricFunction:
        if name in REGISTRY and REGISTRY[name] is not function:
            raise ValueError(f"metric function {name!r} is already registered")
        REGISTRY[name] = function
        return function

    return decorate


def create_metric_functions(names: Sequence[str] | None = None) -> dict[str, MetricFunction]:
    """The functions to call each round: ``names`` in order, or every registered one."""
    if names is None:
        return dict(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(
            f"unknown metric function(s) {', '.join(unknown)}; available: {', '.join(REGISTRY)}"
        )
    return {name: REGISTRY[name] for name in names}


# ----------------------------------------------------------------- built-ins: gauges


@register_metric("cpu")
def cpu() -> list[Sample]:
    """CPU percent since the previous call, overall and per core (the first call primes)."""
    per_core = psutil.cpu_percent(interval=None, percpu=True)
    overall = sum(per_core) / len(per_core) if per_core else 0.0
    samples = [Sample("cpu_percent", GAUGE, overall)]
    samples += [
        Sample("cpu_percent", GAUGE, value, {"cpu": str(i)}) for i, value in enumerate(per_core)
    ]
    return samples


@register_metric("memory")
def memory() -> list[Sample]:
    return [
        Sample("memory_percent", GAUGE, psutil.virtual_memory().percent),
        Sample("swap_percent", GAUGE, psutil.swap_memory().percent),
    ]


@register_metric("disk_usage")
def disk_usage() -> list[Sample]:
    """Used percent of each mounted physical filesystem."""
    samples = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except (PermissionError, OSError):  # unreadable or vanished mount: nothing to report
            continue
        samples.append(
            Sample("disk_usage_percent", GAUGE, usage.percent, {"mount": part.mountpoint})
        )
    return samples


@register_metric("load")
def load() -> list[Sample]:
    one, five, fifteen = os.getloadavg() if hasattr(os, "getloadavg") else psutil.getloadavg()
    return [
        Sample("load_average", GAUGE, one, {"period": "1m"}),
        Sample("load_average", GAUGE, five, {"period": "5m"}),
        Sample("load_average", GAUGE, fifteen, {"period": "15m"}),
    ]


# ----------------------------------------------------------------- built-ins: counters


@register_metric("network")
def network() -> list[Sample]:
    """Bytes and packets per interface, cumulative (psutil corrects counter wrap)."""
    samples = []
    for interface, io in sorted(psutil.net_io_counters(pernic=True, nowrap=True).items()):
        labels = {"interface": interface}
        samples += [
            Sample("net_bytes_sent", COUNTER, io.bytes_sent, labels),
            Sample("net_bytes_recv", COUNTER, io.bytes_recv, labels),
            Sample("net_packets_sent", COUNTER, io.packets_sent, labels),
            Sample("net_packets_recv", COUNTER, io.packets_recv, labels),
        ]
    return samples


@register_metric("disk_io")
def disk_io() -> list[Sample]:
    """Bytes read and written by all disks (none inside some containers)."""
    io = psutil.disk_io_counters(perdisk=False, nowrap=True)
    if io is None:
        return []
    return [
        Sample("disk_read_bytes", COUNTER, io.read_bytes),
        Sample("disk_write_bytes", COUNTER, io.write_bytes),
    ]


@register_metric("context_switches")
def context_switches() -> list[Sample]:
    stats = psutil.cpu_stats()
    return [
        Sample("context_switches", COUNTER, stats.ctx_switches),
        Sample("interrupts", COUNTER, stats.interrupts),
    ]


DEFAULT_METRICS = ("cpu", "memory", "disk_usage", "load", "network", "disk_io", "context_switches")

"""Prometheus export: Beam counters as the contract's metrics, served and pushed during a run.

Exposition text is read back with prometheus_client's own parser.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from beamstream import counters
from beamstream.launch.options import OperationsOptions
from beamstream.launch.run import OptionsError, parse_options
from beamstream.ops.exporter import MetricsExporter
from beamstream.ops.prometheus import families
from beamstream.pipelines import frames
from tests.services.ports import free_port

BASE = (("app", "frames-test"), ("job", "ci-42"))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """{(sample name, sorted labels): value} of an exposition, by prometheus_client's parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def exposition(query, app: str, job: str, namespace: str = "") -> str:
    class Once:
        def collect(self):
            return families(query, app, job, namespace)

    return generate_latest(Once()).decode("utf-8")  # type: ignore[arg-type]


def labelled(base, **extra) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(base + tuple(extra.items())))


class _Count(beam.DoFn):
    def __init__(self, error_type: str):
        self._error_type = error_type

    def process(self, element):
        counters.counter(counters.MESSAGES_CONSUMED).inc()
        if element % 3 == 0:
            counters.error_counter(self._error_type).inc()
        if element % 10 == 0:
            counters.counter(counters.LATE_RECORDS).inc()
        beam.metrics.Metrics.distribution(counters.NAMESPACE, "batch_size").update(element)
        beam.metrics.Metrics.counter("other", "ignored").inc()
        yield element


@pytest.fixture(scope="module")
def counted_query():
    pipeline = TestPipeline()
    numbers = pipeline | beam.Create(range(30))
    numbers | "A" >> beam.ParDo(_Count("ValueError"))
    numbers | "B" >> beam.ParDo(_Count('Odd"Type\\\n'))
    result = pipeline.run()
    result.wait_until_finish()
    return result.metrics().query()


def test_contract_names_and_labels_summed_over_steps(counted_query):
    text = exposition(counted_query, 'a"pp', "j\nob")
    labels = (("app", 'a"pp'), ("job", "j\nob"))  # escaped and unescaped by the library
    samples = parse(text)
    assert samples[("messages_consumed_total", labels)] == 60
    assert samples[("messages_produced_total", labels)] == 0
    assert samples[("dead_letters_total", labels)] == 0
    assert samples[("late_records_total", labels)] == 6
    errors = {
        dict(key)["exception"]: value
        for (name, key), value in samples.items()
        if name == "message_errors_total"
    }
    assert errors == {"ValueError": 10, 'Odd"Type\\\n': 10}
    assert samples[("batch_size_count", labels)] == 60
    assert samples[("batch_size_sum", labels)] == 2 * sum(range(30))
    assert all(dict(key).keys() >= {"app", "job"} for _, key in samples)
    assert not any("error_type" in dict(key) for _, key in samples)
    assert not any("ignored" in name or "beamstream" in name for name, _ in samples)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["messages_consumed"] == types["message_errors"] == "counter"
    assert "# HELP messages_consumed_total Messages read from the source." in text


def test_namespace_prefixes_every_name(counted_query):
    samples = parse(exposition(counted_query, "app", "job", namespace="shop"))
    names = {name for name, _ in samples}
    assert {
        "shop_messages_consumed_total",
        "shop_messages_produced_total",
        "shop_message_errors_total",
        "shop_dead_letters_total",
        "shop_late_records_total",
    } <= names
    assert all(name.startswith("shop_") for name in names)
    labels = (("app", "app"), ("job", "job"))
    assert samples[("shop_message_errors_total", labelled(labels, exception="ValueError"))] == 10


def test_before_any_result_the_standard_series_are_zero():
    samples = parse(exposition({}, "app", "job"))
    labels = (("app", "app"), ("job", "job"))
    assert samples == {
        ("messages_consumed_total", labels): 0,
        ("messages_produced_total", labels): 0,
        ("dead_letters_total", labels): 0,
    }


def test_metrics_namespace_option():
    assert parse_options([]).view_as(OperationsOptions).metrics_namespace == ""
    opts = parse_options(["--metrics_namespace=beamstream"]).view_as(OperationsOptions)
    assert opts.metrics_namespace == "beamstream"
    with pytest.raises(OptionsError, match="metric name prefix"):
        parse_options(["--metrics_namespace=9-bad"])


class _Gateway:
    """A Pushgateway stand-in: records every PUT (path, body)."""

    def __init__(self):
        self.puts: list[tuple[str, str]] = []
        received = self.puts

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                received.append((self.path, self.rfile.read(length).decode("utf-8")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    gw = _Gateway()
    yield gw
    gw.close()


def _frames_file(tmp_path, valid: int, invalid: int):
    lines = [
        json.dumps({"timestamp": 1_700_000_000 + i / 10, "uid": f"u{i % 7}"}) for i in range(valid)
    ]
    lines += ["not json"] * invalid
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _scrape(port: int, accept: str | None = None) -> tuple[str, str]:
    """(Content-Type, body) of GET /metrics."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode("utf-8")


def test_frames_run_serves_and_pushes_its_metrics(tmp_path, gateway):
    source = _frames_file(tmp_path, valid=500, invalid=7)
    port = free_port()
    argv = [
        f"--source={source}",
        f"--per_second_sink={tmp_path}/sec",
        f"--per_minute_sink={tmp_path}/min",
        f"--dead_letter_sink={tmp_path}/dead",
        f"--metrics_port={port}",
        "--metrics_linger=120",
        f"--pushgateway={gateway.url}",
        "--app_name=frames-test",
        "--job_name=ci-42",
    ]
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(result=frames.run(argv)))
    runner.start()
    consumed_key = ("messages_consumed_total", BASE)
    seen: list[Samples] = []
    try:
        # Zeros until the batch run hands back its result, then the final values;
        # the run returns once those have been scraped (--metrics_linger).
        while runner.is_alive():
            try:
                content_type, text = _scrape(port)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)  # not listening yet, or closed after the final scrape
                continue
            assert content_type.startswith("text/plain; version=0.0.4")
            samples = parse(text)
            seen.append(samples)
            if samples.get(consumed_key) == 507:
                break
    finally:
        runner.join(timeout=180)
    assert not runner.is_alive() and "result" in outcome
    final = seen[-1]
    assert final[consumed_key] == 507
    assert final[("dead_letters_total", BASE)] == 7
    errors = ("message_errors_total", labelled(BASE, exception="InvalidFrame"))
    assert final[errors] == 7
    assert all(s[consumed_key] in (0, 507) for s in seen)

    assert gateway.puts, "nothing was pushed"
    path, body = gateway.puts[-1]
    assert path == "/metrics/job/ci-42/app/frames-test"
    pushed = parse(body)
    assert pushed[consumed_key] == 507
    assert pushed[errors] == 7


def test_push_groups_by_job_and_app(gateway):
    exporter = MetricsExporter("a/b", "j", pushgateway=gateway.url, namespace="ns")
    assert exporter.push() is True
    path, body = gateway.puts[-1]
    assert path == "/metrics/job/j/app@base64/YS9i"  # the Pushgateway's form for '/'
    labels = (("app", "a/b"), ("job", "j"))
    assert parse(body)[("ns_messages_consumed_total", labels)] == 0


def test_push_to_an_unreachable_gateway_is_reported_not_raised(caplog):
    closed = free_port()
    exporter = MetricsExporter("app", "j", pushgateway=f"http://127.0.0.1:{closed}")
    with caplog.at_level(logging.WARNING):
        assert exporter.push() is False
    assert "metrics push" in caplog.text


def test_scrape_negotiates_the_format_and_a_failing_query_is_an_error():
    exporter = MetricsExporter("app", "job", port=0, host="127.0.0.1").start()
    try:
        content_type, text = _scrape(exporter.port)
        assert content_type.startswith("text/plain; version=0.0.4")
        labels = (("app", "app"), ("job", "job"))
        assert parse(text)[("messages_consumed_total", labels)] == 0
        content_type, text = _scrape(exporter.port, "application/openmetrics-text")
        assert content_type.startswith("application/openmetrics-text")
        assert text.endswith("# EOF\n")

        class Broken:
            def metrics(self):
                raise RuntimeError("runner gone")

        exporter.attach(Broken())
        with pytest.raises(urllib.error.HTTPError) as err:
            _scrape(exporter.port)
        assert err.value.code == 500
        exporter.attach(None)
        assert parse(_scrape(exporter.port)[1])[("messages_consumed_total", labels)] == 0
    finally:
        exporter.close()

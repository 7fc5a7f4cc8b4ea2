"""Prometheus export: rendering Beam counters, /metrics while a pipeline runs, Pushgateway PUTs."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from beamstream import counters
from beamstream.ops.exporter import MetricsExporter
from beamstream.ops.prometheus import parse_text, render
from beamstream.pipelines import frames
from tests.services.ports import free_port

BASE = (("app", "frames-test"), ("job", "ci-42"))


class _Count(beam.DoFn):
    def __init__(self, error_type: str):
        self._error_type = error_type

    def process(self, element):
        counters.counter(counters.MESSAGES_CONSUMED).inc()
        if element % 3 == 0:
            counters.error_counter(self._error_type).inc()
        beam.metrics.Metrics.counter("other", "ignored").inc()
        yield element


def test_render_sums_steps_and_labels_error_types():
    pipeline = TestPipeline()
    numbers = pipeline | beam.Create(range(30))
    numbers | "A" >> beam.ParDo(_Count("ValueError"))
    numbers | "B" >> beam.ParDo(_Count('Odd"Type\\'))
    result = pipeline.run()
    result.wait_until_finish()

    samples = parse_text(render(result.metrics().query(), 'a"pp', "j\nob"))
    labels = (("app", 'a\\"pp'), ("job", "j\\nob"))
    assert samples[("beamstream_messages_consumed_total", labels)] == 60
    assert samples[("beamstream_messages_produced_total", labels)] == 0
    assert samples[("beamstream_dead_letters_total", labels)] == 0
    errors = {
        dict(key)["error_type"]: value
        for (name, key), value in samples.items()
        if name == "beamstream_message_errors_total"
    }
    assert errors == {"ValueError": 10, 'Odd\\"Type\\\\': 10}
    assert not any("ignored" in name for name, _ in samples)


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


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode("utf-8")


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
    consumed_key = ("beamstream_messages_consumed_total", BASE)
    seen: list[dict] = []
    try:
        # Zeros until the batch run hands back its result, then the final values;
        # the run returns once those have been scraped (--metrics_linger).
        while runner.is_alive():
            try:
                samples = parse_text(_scrape(port))
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)  # not listening yet, or closed after the final scrape
                continue
            seen.append(samples)
            if samples.get(consumed_key) == 507:
                break
    finally:
        runner.join(timeout=180)
    assert not runner.is_alive() and "result" in outcome
    final = seen[-1]
    assert final[consumed_key] == 507
    assert final[("beamstream_dead_letters_total", BASE)] == 7
    error_labels = tuple(sorted(BASE + (("error_type", "InvalidFrame"),)))
    errors = ("beamstream_message_errors_total", error_labels)
    assert final[errors] == 7
    assert all(s[consumed_key] in (0, 507) for s in seen)

    assert gateway.puts, "nothing was pushed"
    path, body = gateway.puts[-1]
    assert path == "/metrics/job/ci-42/app/frames-test"
    pushed = parse_text(body)
    assert pushed[consumed_key] == 507
    assert pushed[errors] == 7


def test_push_to_an_unreachable_gateway_is_reported_not_raised(caplog):
    closed = free_port()
    exporter = MetricsExporter("a/b", "j", pushgateway=f"http://127.0.0.1:{closed}")
    assert exporter.push_url() == f"http://127.0.0.1:{closed}/metrics/job/j/app@base64/YS9i"
    assert exporter.push() is False
    assert "metrics push" in caplog.text


def test_scrape_before_a_result_reports_zeros_and_unknown_paths_404():
    exporter = MetricsExporter("app", "job", port=0, host="127.0.0.1").start()
    try:
        samples = parse_text(_scrape(exporter.port))
        labels = (("app", "app"), ("job", "job"))
        assert samples[("beamstream_messages_consumed_total", labels)] == 0
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/other", timeout=5)
        assert err.value.code == 404
    finally:
        exporter.close()

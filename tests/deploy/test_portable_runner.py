"""Every pipeline gives the same results on the portable runner as on the DirectRunner.

``PortableRunner --job_endpoint=embed`` runs the pipeline through the Beam
portability protocol (job service, Runner API proto, SDK harness over the Fn
API) that the Flink runner speaks; ``LOOPBACK`` runs the SDK harness in this
process. Flink itself is not run here.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from beamstream.deploy.catalog import pipeline_modules
from tests.models.helpers import normal_aggregates, outlier_aggregates, write_jsonl
from tests.support.jsonl import read_shards

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]
DIRECT = ["--runner=DirectRunner"]
BAD_LINES = ["not json", json.dumps({"neither": "timestamp nor fields"})]
# Fields that legitimately differ between two runs: wall-clock stamps and timings.
VOLATILE = {"latency_ms", "updated_at_ms"}
START_MS = 1_700_000_040_000


# --------------------------------------------------------------------------- sample data


def frames_input(path: Path) -> list[str]:
    sample = resources.files("beamstream").joinpath("data/frames_sample.jsonl")
    lines = sample.read_text(encoding="utf-8").splitlines()[:3000]
    write_jsonl(path, lines + BAD_LINES)
    return []


def metrics_input(path: Path) -> list[str]:
    rng = random.Random(11)
    records = []
    for scrape in range(24):
        for instance in ("a:9100", "b:9100"):
            t_ms = START_MS + scrape * 5000 + rng.randint(-300, 300)
            records.append(
                {
                    "name": "node_load1",
                    "labels": {"instance": instance},
                    "timestamp": t_ms,
                    "value": round(rng.uniform(0, 4), 2),
                }
            )
            records.append(
                {
                    "name": "http_requests_total",
                    "labels": {"instance": instance},
                    "timestamp": t_ms,
                    "value": scrape * 10 + rng.randint(0, 9),
                }
            )
    write_jsonl(path, records + BAD_LINES)
    return ["--group_by_labels=instance", "--last_n=3"]


def store_input(path: Path) -> list[str]:
    rng = random.Random(12)
    records = [
        {
            "host": f"h{i % 3}",
            "host_id": f"id-{i % 3}",
            "name": ("cpu", "mem", "io")[i % 3],
            "type": ("gauge", "counter", "timer")[i % 3],
            "value": round(rng.uniform(0, 100), 3),
            "timestamp": START_MS + 1000 * i,
            "labels": {"core": str(i % 2)},
        }
        for i in range(150)
    ]
    write_jsonl(path, records + BAD_LINES)
    return ["--batch_size=40"]


def infer_input(path: Path, models: dict[str, Path]) -> list[str]:
    from beamstream.models import digits

    X, _ = digits.held_out()
    requests = [{"id": f"d{i}", "features": x.astype(int).tolist()} for i, x in enumerate(X[:60])]
    write_jsonl(path, requests + BAD_LINES)
    return [f"--model={models['digits']}"]


def detect_input(path: Path, models: dict[str, Path]) -> list[str]:
    write_jsonl(path, normal_aggregates(120, seed=5) + outlier_aggregates(seed=5) + BAD_LINES)
    return [f"--model={models['anomaly']}", "--all_scores"]


# pipeline -> (write input, return extra args), names of its file outputs besides dead letters
CASES: dict[str, tuple[Callable[..., list[str]], tuple[str, ...]]] = {
    "frames": (lambda p, _: frames_input(p), ("per_second_sink", "per_minute_sink")),
    "metrics": (lambda p, _: metrics_input(p), ("sink", "last_n_sink")),
    "store": (lambda p, _: store_input(p), ()),
    "infer": (infer_input, ("sink",)),
    "detect": (detect_input, ("sink",)),
}


def test_every_pipeline_has_a_portable_case():
    assert set(CASES) == set(pipeline_modules()), "add the new pipeline to CASES"


# --------------------------------------------------------------------------- running


def canonical(rows: list[dict[str, Any]]) -> list[str]:
    """Order-free, without fields that differ from run to run."""

    def strip(row: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in row.items() if k not in VOLATILE}
        if "error" in row and "payload" in row:  # a dead letter: its stamp is wall-clock time
            row.pop("timestamp", None)
        return row

    return sorted(json.dumps(strip(r), sort_keys=True) for r in rows)


def sqlite_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM metric_samples")]


def run_on(runner_args: list[str], name: str, source: Path, extra: list[str], out: Path):
    """Runs pipeline ``name`` with its outputs under ``out``; returns every output, canonical."""
    module = pipeline_modules()[name]
    _, outputs = CASES[name]
    out.mkdir()
    sinks = {option: str(out / option) for option in (*outputs, "dead_letter_sink")}
    args = [f"--source={source}", *(f"--{k}={v}" for k, v in sinks.items()), *extra]
    if name == "store":
        args.append(f"--sink=sqlite:///{out / 'samples.db'}")
    result = module.run([*runner_args, *args])
    assert str(result.state) == "DONE"
    results = {option: canonical(read_shards(prefix)) for option, prefix in sinks.items()}
    if name == "store":
        results["database"] = canonical(sqlite_rows(out / "samples.db"))
    return results


@pytest.fixture(scope="module")
def models(digits_model_dir, anomaly_model_dir) -> dict[str, Path]:
    return {"digits": digits_model_dir, "anomaly": anomaly_model_dir}


@pytest.mark.parametrize("name", sorted(CASES))
def test_portable_runner_matches_direct_runner(name, models, tmp_path):
    write_input, _ = CASES[name]
    source = tmp_path / "input.jsonl"
    extra = write_input(source, models)

    direct = run_on(DIRECT, name, source, extra, tmp_path / "direct")
    portable = run_on(PORTABLE, name, source, extra, tmp_path / "portable")

    empty = [option for option, rows in direct.items() if not rows]
    assert not empty, f"outputs without records: {empty}"
    assert portable == direct

"""``beamstream detect``: injected incidents come out as anomalies, normal windows do not.

Thresholds as in tests/models/test_anomaly.py: anomaly = score < 0 (model
contamination 0.001); every injected outlier must come out, and at most 1% of
the normal aggregates (fresh, not the training set) may.
"""

from __future__ import annotations

import json

from beamstream import cli
from beamstream.pipelines import detect
from tests.models.conftest import anomaly_model, digits_model  # noqa: F401 - session fixtures
from tests.models.helpers import normal_aggregates, outlier_aggregates, read_jsonl, write_jsonl


def test_detect_outputs_injected_outliers(anomaly_model, tmp_path):  # noqa: F811
    model_dir, metadata = anomaly_model
    normal = normal_aggregates(600, seed=42)
    outliers = outlier_aggregates(seed=8)
    for i, record in enumerate(outliers):
        record["id"] = f"incident-{i}"
    stream = normal[:300] + outliers + normal[300:]
    broken = json.dumps({"name": "http_request_duration_seconds", "count": "many"})
    source = write_jsonl(tmp_path / "aggregates.jsonl", [*stream, broken])
    detect.run(
        [
            f"--source={source}",
            f"--sink={tmp_path / 'out' / 'anomalies'}",
            f"--model={model_dir}",
            f"--dead_letter_sink={tmp_path / 'out' / 'dead'}",
        ]
    )
    anomalies = read_jsonl(tmp_path / "out", "anomalies")
    flagged = {a["id"] for a in anomalies}
    incidents = {f"incident-{i}" for i in range(len(outliers))}
    assert incidents <= flagged
    assert len(flagged - incidents) <= 0.01 * len(normal)
    sample = next(a for a in anomalies if a["id"] == "incident-0")
    assert sample["anomaly"] is True and sample["score"] < 0
    assert (
        sample["name"] == outliers[0]["name"]
        and sample["window_start"] == outliers[0]["window_start"]
    )
    assert sample["model"] == {"name": "metrics-anomaly", "version": metadata.version}
    dead = read_jsonl(tmp_path / "out", "dead")
    assert [d["payload"] for d in dead] == [broken]
    assert "'count' must be a number" in dead[0]["error"]


def test_all_scores_writes_every_aggregate(anomaly_model, tmp_path):  # noqa: F811
    records = normal_aggregates(50, seed=4)
    source = write_jsonl(tmp_path / "a.jsonl", records)
    detect.run(
        [
            f"--source={source}",
            f"--sink={tmp_path / 'scores'}",
            f"--model={anomaly_model[0]}",
            "--all_scores",
        ]
    )
    scored = read_jsonl(tmp_path, "scores")
    assert len(scored) == 50 and len({s["id"] for s in scored}) == 50
    assert all(isinstance(s["score"], float) for s in scored)


def test_detect_refuses_a_classifier(digits_model, tmp_path, capsys):  # noqa: F811
    source = write_jsonl(tmp_path / "a.jsonl", normal_aggregates(3, seed=1))
    argv = [f"--source={source}", f"--sink={tmp_path / 'o'}", f"--model={digits_model[0]}"]
    assert cli.main(["detect", *argv]) == 2
    assert "detect needs an anomaly model" in capsys.readouterr().err

"""Every pipeline translates for Dataflow, offline (``--dry_run``), from every kind of source.

Proves the job graph Beam would submit: the pipeline builds under the
DataflowRunner, the runner translates it (Runner v2 portable proto), the job
is streaming exactly when the source is unbounded, and the pipeline's own
steps are in the graph. It cannot prove that the job then runs on Dataflow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
import pytest

from beamstream.deploy.catalog import pipeline_modules
from beamstream.launch.run import parse_options

DATAFLOW = [
    "--runner=DataflowRunner",
    "--dry_run=True",
    "--project=beamstream-test",
    "--region=us-central1",
    "--temp_location=gs://beamstream-test/tmp",
]
BROKER = "kafka://127.0.0.1:9092"
PROJECT = "projects/beamstream-test"

# source kind -> (source URI, sink URI for an output name, --streaming given?, job streams?)
# A bounded Kafka read (stop=end) still streams on Dataflow: the UnboundedSource
# reader's output is an unbounded PCollection, and Dataflow infers streaming mode.
SOURCES: dict[str, tuple[str, Callable[[str], str], bool, bool]] = {
    # File paths stay local: the URI parser does not accept gs:// yet.
    "file": ("/data/in/*.jsonl", lambda out: f"/data/out/{out}", False, False),
    "kafka-bounded": (f"{BROKER}/in?stop=end", lambda out: f"{BROKER}/{out}", False, True),
    "kafka": (f"{BROKER}/in?group=beamstream", lambda out: f"{BROKER}/{out}", True, True),
    "pubsub": (
        f"pubsub://{PROJECT}/subscriptions/in-sub",
        lambda out: f"pubsub://{PROJECT}/topics/{out}",
        True,
        True,
    ),
}

# pipeline -> (arguments given a sink factory and the model dirs, its top-level steps)
Args = Callable[[Callable[[str], str], dict[str, Path]], list[str]]
PIPELINES: dict[str, tuple[Args, set[str]]] = {
    "frames": (
        lambda sink, _: [
            f"--per_second_sink={sink('per-second')}",
            f"--per_minute_sink={sink('per-minute')}",
            f"--passthrough_sink={sink('frames')}",
        ],
        {"ReadFrames", "FrameMetrics", "WritePerSecond", "WritePerMinute", "WritePassthrough"},
    ),
    "metrics": (
        lambda sink, _: [f"--sink={sink('stats')}", "--last_n=3", f"--last_n_sink={sink('last')}"],
        {"ReadRecords", "Parse", "WindowStats", "WriteStats", "KeepLastN", "WriteLastN"},
    ),
    "store": (
        lambda sink, _: ["--sink=postgresql://beamstream@db.internal:5432/metrics"],
        {"ReadSamples", "StoreSamples"},
    ),
    "infer": (
        lambda sink, models: [f"--sink={sink('predictions')}", f"--model={models['digits']}"],
        {"ReadRequests", "Predict", "WritePredictions"},
    ),
    "detect": (
        lambda sink, models: [f"--sink={sink('anomalies')}", f"--model={models['anomaly']}"],
        {"ReadAggregates", "Score", "WriteAnomalies"},
    ),
}


def test_every_pipeline_has_a_translation_case():
    assert set(PIPELINES) == set(pipeline_modules()), "add the new pipeline to PIPELINES"


@pytest.fixture(scope="module")
def models(digits_model_dir, anomaly_model_dir) -> dict[str, Path]:
    return {"digits": digits_model_dir, "anomaly": anomaly_model_dir}


def translate(name: str, argv: list[str]):
    """Builds and dry-runs pipeline ``name``; returns (result, transforms by unique name)."""
    module = pipeline_modules()[name]
    options = parse_options(argv, module.REQUIRED)
    pipeline = beam.Pipeline(options=options)
    module.build(pipeline, options)
    result = pipeline.run()
    result.wait_until_finish()
    proto = result.job.proto_pipeline
    transforms = {t.unique_name: t for t in proto.components.transforms.values()}
    return result, transforms


@pytest.mark.parametrize("source_kind", sorted(SOURCES))
@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_translates_for_dataflow(name, source_kind, models):
    source, sink, streaming_flag, streams = SOURCES[source_kind]
    pipeline_args, steps = PIPELINES[name]
    argv = [
        *DATAFLOW,
        *(["--streaming"] if streaming_flag else []),
        f"--source={source}",
        f"--dead_letter_sink={sink('dead-letters')}",
        *pipeline_args(sink, models),
    ]
    result, transforms = translate(name, argv)

    assert str(result.state) == "DONE"
    job = result.job.proto
    expected_type = "JOB_TYPE_STREAMING" if streams else "JOB_TYPE_BATCH"
    assert job.type.name == expected_type
    top_level = {n for n in transforms if "/" not in n}
    assert steps | {"WriteDeadLetters"} <= top_level
    urns = {t.spec.urn for t in transforms.values()}
    names = "\n".join(transforms)
    if source_kind == "pubsub":
        assert "beam:transform:pubsub_read:v1" in urns, "Dataflow's native Pub/Sub read"
    elif source_kind.startswith("kafka"):
        # Streaming or not, the steps Dataflow sees (and matches on an update)
        # are beam.io.Read's.
        assert "/ReadKafka/ReadPartitions/ReadFromUnboundedSource/ReadUnbounded" in names
    else:
        assert "/ReadFiles/" in names

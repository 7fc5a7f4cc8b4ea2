"""The RunInference handler: verified loading, keyed batches, model swaps."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beamstream.models import digits
from beamstream.models.artifacts import METADATA_FILE
from beamstream.models.handlers import VerifiedSklearnModelHandler, keyed_handler
from beamstream.models.train import train_digits


def test_keyed_run_inference_keeps_ids_with_predictions(digits_model):
    model_dir, _ = digits_model
    X, y = digits.held_out()
    keyed = [(f"k{i}", X[i]) for i in range(40)]
    with TestPipeline() as p:
        labels = (
            p
            | beam.Create(keyed)
            | RunInference(keyed_handler(str(model_dir), max_batch_size=16))
            | beam.MapTuple(lambda key, result: (key, int(np.argmax(result.inference))))
        )
        # The held-out accuracy is ~0.97: compare against the model's own answers.
        expected_model = VerifiedSklearnModelHandler(str(model_dir)).load_model()
        expected = expected_model.estimator.predict(X[:40])
        assert_that(labels, equal_to([(f"k{i}", int(expected[i])) for i in range(40)]))


def test_handler_reports_model_id_and_batches(digits_model):
    model_dir, metadata = digits_model
    handler = VerifiedSklearnModelHandler(
        str(model_dir), metadata, min_batch_size=10, max_batch_size=100
    )
    model = handler.load_model()
    X, _ = digits.held_out()
    results = list(handler.run_inference(list(X[:3]), model))
    assert [r.model_id for r in results] == ["digits:test-1"] * 3
    assert results[0].inference.shape == (10,)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 10, "max_batch_size": 100}
    assert handler.get_num_bytes(list(X[:3])) == 3 * 64 * 8


def test_update_model_path_swaps_to_the_new_version(tmp_path):
    first = train_digits(str(tmp_path / "v1"), version="v1")
    train_digits(str(tmp_path / "v2"), version="v2")
    handler = VerifiedSklearnModelHandler(str(tmp_path / "v1"), first)
    assert handler.load_model().metadata.version == "v1"
    # WatchFilePattern reports the matched file; the handler takes its directory.
    handler.update_model_path(str(tmp_path / "v2" / METADATA_FILE))
    assert handler.model_dir == str(tmp_path / "v2")
    assert handler.load_model().metadata.version == "v2"


def test_model_updates_refused_where_the_runner_cannot_watch(digits_model, tmp_path):
    from beamstream.launch.run import OptionsError
    from beamstream.pipelines import infer

    argv = [
        f"--source={tmp_path / 'r.jsonl'}",
        f"--sink={tmp_path / 'p'}",
        f"--model={digits_model[0]}",
        f"--model_updates={tmp_path}/*/metadata.json",
    ]
    with pytest.raises(OptionsError, match="needs Dataflow, Flink or Prism"):
        infer.run(argv)


def test_model_updates_wire_a_watch_side_input(digits_model, tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    from beamstream.pipelines import infer

    options = PipelineOptions(
        [
            f"--source={tmp_path / 'r.jsonl'}",
            f"--sink={tmp_path / 'p'}",
            f"--model={digits_model[0]}",
            f"--model_updates={tmp_path}/*/metadata.json",
            "--runner=PrismRunner",
            "--streaming",
        ]
    )
    pipeline = beam.Pipeline(options=options)
    infer.build(pipeline, options)
    transforms = pipeline.to_runner_api().components.transforms.values()
    names = {t.unique_name for t in transforms}
    assert "Predict/WatchModel" in names
    # The watch feeds RunInference as a side input.
    inference = next(
        t
        for t in transforms
        if "RunInferenceDoFn" in t.unique_name and t.spec.urn == "beam:transform:pardo:v1"
    )
    from apache_beam.portability.api import beam_runner_api_pb2

    payload = beam_runner_api_pb2.ParDoPayload.FromString(inference.spec.payload)
    assert payload.side_inputs


_POOL_THREADS_AFTER_LOAD = """
import sys
from threadpoolctl import threadpool_info
from beamstream.models.handlers import batch_handler
batch_handler(sys.argv[1], threads=int(sys.argv[2])).load_model()
print(sorted({pool["num_threads"] for pool in threadpool_info()}))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_loading_the_model_sets_the_worker_threads(digits_model, threads):
    # In a fresh process: the limit is process-wide, and so is what it prevents
    # (idle BLAS/OpenMP threads spinning on the cores that read and write).
    import subprocess
    import sys

    model_dir, _ = digits_model
    out = subprocess.run(
        [sys.executable, "-c", _POOL_THREADS_AFTER_LOAD, str(model_dir), str(threads)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    assert out.strip() == f"[{threads}]"


def test_model_threads_must_not_be_negative(digits_model):
    from beamstream.launch.run import OptionsError
    from beamstream.pipelines import infer

    model_dir, _ = digits_model
    with pytest.raises(OptionsError, match="--model_threads: '-1' must be >= 0"):
        infer.run([f"--model={model_dir}", "--source=a.jsonl", "--sink=b", "--model_threads=-1"])

"""``Predict``: request messages in, responses and dead letters out, via ``RunInference``.

parse/validate (bad requests -> dead letters) -> ``RunInference`` with the
keyed, verified scikit-learn handler -> format. Batches that fail inside the
model go to the dead letters too (``RunInference.with_exception_handling``),
one record per request, so nothing is dropped silently.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from beamstream import counters
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.io.elements import Message
from beamstream.models.artifacts import ModelMetadata
from beamstream.models.handlers import keyed_handler
from beamstream.models.requests import RequestError, RequestParser, ResponseFormatter

STEP_PARSE = "parse_request"
STEP_INFER = "inference"


class _ParseRequests(beam.DoFn):
    def __init__(self, metadata: ModelMetadata, keep_record: bool):
        self._metadata = metadata
        self._keep_record = keep_record

    def setup(self):
        self._parser = RequestParser(self._metadata, self._keep_record)
        self._consumed = counters.counter(counters.MESSAGES_CONSUMED)
        self._dead = counters.counter(counters.DEAD_LETTERS)

    def process(self, message: Message):
        self._consumed.inc()
        try:
            yield self._parser.parse(message.value, message.describe())
        except RequestError as exc:
            counters.error_counter(type(exc).__name__).inc()
            self._dead.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG,
                dead_letter(exc, message.value, STEP_PARSE, source=message.describe()),
            )


class _FormatResponses(beam.DoFn):
    def __init__(self, metadata: ModelMetadata, only_anomalies: bool):
        self._metadata = metadata
        self._only_anomalies = only_anomalies

    def setup(self):
        self._formatter = ResponseFormatter(self._metadata)
        self._produced = counters.counter(counters.MESSAGES_PRODUCED)

    def process(self, keyed):
        key, result = keyed
        response = self._formatter.format(key, result.inference, result.model_id)
        if self._only_anomalies and not response.get("anomaly"):
            return
        self._produced.inc()
        yield response


def _failed_batch_letters(failed) -> list[dict[str, Any]]:
    """One dead letter per request of a batch the model raised on."""
    batch, exc = failed
    counters.error_counter(type(exc).__name__).inc(len(batch))
    counters.counter(counters.DEAD_LETTERS).inc(len(batch))
    letters = []
    for key, example in batch:
        row = example[1] if isinstance(example, tuple) else example
        letters.append(dead_letter(exc, None, STEP_INFER, request_id=key.id, features=row.tolist()))
    return letters


class Predict(beam.PTransform):
    """``Message`` requests -> ``{"predictions", "dead_letters"}`` PCollections of dicts.

    ``watch_pattern``: a file pattern such as ``gs://b/models/*/metadata.json``
    watched with Beam's ``WatchFilePattern`` every ``watch_interval_s``; the
    newest match's directory becomes the model (verified like the first one)
    without a restart. That needs a streaming runner that runs
    ``PeriodicImpulse`` (Dataflow, Flink, Prism), not the local DirectRunner.
    """

    def __init__(
        self,
        model_dir: str,
        metadata: ModelMetadata,
        *,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        max_batch_duration_secs: int | None = None,
        keep_record: bool = False,
        only_anomalies: bool = False,
        watch_pattern: str | None = None,
        watch_interval_s: float = 300.0,
    ):
        super().__init__()
        self._model_dir = model_dir
        self._metadata = metadata
        self._batching = dict(
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
        )
        self._keep_record = keep_record
        self._only_anomalies = only_anomalies
        self._watch_pattern = watch_pattern
        self._watch_interval_s = watch_interval_s

    @property
    def kind(self) -> str:
        """``classifier`` or ``detector``: what the responses carry."""
        return self._metadata.kind

    def expand(self, messages):
        parsed = messages | "Parse" >> beam.ParDo(
            _ParseRequests(self._metadata, self._keep_record)
        ).with_outputs(DEAD_LETTER_TAG, main="requests")
        updates = None
        if self._watch_pattern:
            from apache_beam.ml.inference.utils import WatchFilePattern

            updates = messages.pipeline | "WatchModel" >> WatchFilePattern(
                self._watch_pattern, interval=self._watch_interval_s
            )
        # Pin workers to the model validated here; side-input updates lift the pin.
        expected = None if updates is not None else self._metadata
        handler = keyed_handler(self._model_dir, expected, **self._batching)
        inference, failures = (
            parsed.requests
            | "RunInference"
            >> RunInference(
                handler,
                # Beam annotates this PCollection[ModelMetadata] but defaults it to None.
                model_metadata_pcoll=updates,  # type: ignore[arg-type]
            ).with_exception_handling()
        )
        predictions = inference | "Format" >> beam.ParDo(
            _FormatResponses(self._metadata, self._only_anomalies)
        )
        failed = failures.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch_letters)
        dead_letters = (parsed[DEAD_LETTER_TAG], failed) | "DeadLetters" >> beam.Flatten()
        return {"predictions": predictions, "dead_letters": dead_letters}

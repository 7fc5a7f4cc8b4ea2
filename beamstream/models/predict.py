"""``Predict``: request batches in, responses and dead letters out, via ``RunInference``.

Per-element cost dominates Beam Python (design.md), so requests travel in
the source's batches (``MessageBatch``) end to end: parse/validate a whole
batch into one feature matrix (bad requests -> dead letters, one by one) ->
``RunInference`` with the verified scikit-learn batch handler, one model call
per batch -> one response per request (dicts, or for the pipelines their
JSON bytes, built a batch at a time). Batches that fail inside the model go to
the dead letters too (``RunInference.with_exception_handling``), one record per
request, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from beamstream import counters
from beamstream.dead_letter import DEAD_LETTER_TAG, dead_letter
from beamstream.io.elements import Message, MessageBatch, encode_payload
from beamstream.models.artifacts import ModelMetadata
from beamstream.models.handlers import batch_handler
from beamstream.models.requests import (
    BatchParser,
    PredictedBatch,
    ResponseFormatter,
    describe_position,
)

STEP_PARSE = "parse_request"
STEP_INFER = "inference"


class _ParseRequests(beam.DoFn):
    """``MessageBatch`` -> ``ParsedBatch`` chunks of at most ``max_batch_size`` requests.

    Invalid requests leave one by one as dead letters, with their reason and
    source position. A single ``Message`` is taken as a batch of one.
    """

    def __init__(self, metadata: ModelMetadata, keep_record: bool, max_batch_size: int | None):
        self._metadata = metadata
        self._keep_record = keep_record
        self._max_batch_size = max_batch_size

    def setup(self):
        self._parser = BatchParser(self._metadata, self._keep_record)
        self._consumed = counters.counter(counters.MESSAGES_CONSUMED)
        self._dead = counters.counter(counters.DEAD_LETTERS)

    def process(self, batch: MessageBatch | Message):
        if isinstance(batch, Message):
            batch = MessageBatch.of([batch])
        self._consumed.inc(batch.size)
        parsed, errors = self._parser.parse(
            batch.values, batch.source, batch.partition, batch.offsets
        )
        for i, exc in errors:
            counters.error_counter(type(exc).__name__).inc()
            self._dead.inc()
            source = describe_position(batch.source, batch.partition, batch.offsets[i])
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG, dead_letter(exc, batch.values[i], STEP_PARSE, source=source)
            )
        if len(parsed):
            yield from parsed.chunks(self._max_batch_size)


class _FormatResponses(beam.DoFn):
    """``PredictedBatch`` -> one response per request: a dict, or its JSON bytes if ``encoded``."""

    def __init__(self, metadata: ModelMetadata, only_anomalies: bool, encoded: bool = False):
        self._metadata = metadata
        self._only_anomalies = only_anomalies
        self._encoded = encoded

    def setup(self):
        self._formatter = ResponseFormatter(self._metadata)

    def process(self, predicted: PredictedBatch):
        responses: Iterable[dict[str, Any] | bytes]
        if self._encoded and not self._only_anomalies:
            responses = self._formatter.encode_batch(predicted)
        else:
            dicts = self._formatter.format_batch(predicted)
            if self._only_anomalies:
                dicts = (r for r in dicts if r.get("anomaly"))
            responses = map(encode_payload, dicts) if self._encoded else dicts
        # Not counted as produced here: the sink that writes them counts them.
        yield from responses


def failed_batch_letters(failed: tuple[Any, tuple[Any, str, Any]]) -> list[dict[str, Any]]:
    """One dead letter per request of a batch the model raised on.

    ``failed`` is what ``RunInference.with_exception_handling`` emits:
    ``(ParsedBatch, (exception type, repr, traceback))``.
    """
    batch, (exc_type, exc_repr, _) = failed
    error_type = getattr(exc_type, "__name__", str(exc_type))
    counters.error_counter(error_type).inc(len(batch))
    counters.counter(counters.DEAD_LETTERS).inc(len(batch))
    return [
        dead_letter(
            exc_repr,
            batch.payloads[i],
            STEP_INFER,
            source=batch.position(i),
            error_type=error_type,
            request_id=batch.ids[i],
            features=batch.features[i].tolist(),
        )
        for i in range(len(batch))
    ]


class Predict(beam.PTransform):
    """``MessageBatch`` (or ``Message``) requests -> ``{"predictions", "dead_letters"}`` dicts.

    A model call gets one source batch, split into pieces of at most
    ``max_batch_size`` requests. ``min_batch_size`` and
    ``max_batch_duration_secs`` are kept for the options' sake but unused:
    the source's batching decides how many requests wait together.

    ``watch_pattern``: a file pattern such as ``gs://b/models/*/metadata.json``
    watched with Beam's ``WatchFilePattern`` every ``watch_interval_s``; the
    newest match's directory becomes the model (verified like the first one)
    without a restart. That needs a streaming runner that runs
    ``PeriodicImpulse`` (Dataflow, Flink, Prism), not the local DirectRunner.

    ``model_threads``: BLAS/OpenMP threads of each worker process once the
    model is loaded (0 leaves the libraries' default).

    ``encoded``: predictions as the JSON bytes a sink would write for the
    dicts (what ``infer`` and ``detect`` write), built a batch at a time,
    which is several times cheaper than a dict per response.
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
        model_threads: int = 1,
        encoded: bool = False,
    ):
        super().__init__()
        self._encoded = encoded
        self._model_dir = model_dir
        self._metadata = metadata
        del min_batch_size, max_batch_duration_secs  # see the class docstring
        self._max_batch_size = max_batch_size
        self._keep_record = keep_record
        self._only_anomalies = only_anomalies
        self._watch_pattern = watch_pattern
        self._watch_interval_s = watch_interval_s
        self._model_threads = model_threads

    @property
    def kind(self) -> str:
        """``classifier`` or ``detector``: what the responses carry."""
        return self._metadata.kind

    def expand(self, messages):
        parsed = messages | "Parse" >> beam.ParDo(
            _ParseRequests(self._metadata, self._keep_record, self._max_batch_size)
        ).with_outputs(DEAD_LETTER_TAG, main="requests")
        updates = None
        if self._watch_pattern:
            from apache_beam.ml.inference.utils import WatchFilePattern

            updates = messages.pipeline | "WatchModel" >> WatchFilePattern(
                self._watch_pattern, interval=self._watch_interval_s
            )
        # Pin workers to the model validated here; side-input updates lift the pin.
        expected = None if updates is not None else self._metadata
        handler = batch_handler(self._model_dir, expected, threads=self._model_threads)
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
            _FormatResponses(self._metadata, self._only_anomalies, self._encoded)
        )
        failed = failures.failed_inferences | "FailedBatches" >> beam.FlatMap(failed_batch_letters)
        dead_letters = (parsed[DEAD_LETTER_TAG], failed) | "DeadLetters" >> beam.Flatten()
        return {"predictions": predictions, "dead_letters": dead_letters}

"""Pipeline options every pipeline shares, as Beam ``PipelineOptions`` subclasses.

Underscore names (``--dead_letter_sink``) so each option is also a Dataflow
Flex Template parameter. URI-valued options are validated when parsed, so a bad
URI fails with one line before any pipeline is built.

Beam builds one argparse parser from every ``PipelineOptions`` subclass that
has been imported, so a flag may be declared by one class only: flags that
several pipelines use (``--source``, ``--sink``, ``--allowed_lateness``,
``--output_time_format``) live here, with the widest valid type, and each
pipeline checks its own narrower constraints when it builds.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from beamstream.argtypes import non_negative
from beamstream.event_time import TIME_FORMATS
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.uris import UriError, parse_sink, parse_source


def source_uri(text: str) -> str:
    """argparse type: a readable source URI (kept as text so options stay picklable)."""
    try:
        parse_source(text)
    except UriError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def sink_uri(text: str) -> str:
    try:
        parse_sink(text)
    except UriError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class SourceOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--source",
            type=source_uri,
            default=None,
            help="Input: kafka://host:port/topic?..., pubsub://projects/P/subscriptions/S, "
            "or a JSON Lines path/glob.",
        )


class SinkOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--sink",
            type=sink_uri,
            default=None,
            help="Output: kafka://, pubsub://projects/P/topics/T, a path prefix, or "
            "(where the pipeline stores rows) sqlite:///, postgresql://, mysql://.",
        )


class WindowingOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--allowed_lateness",
            type=non_negative,
            default=30.0,
            help="Seconds after a window closes during which late records still update it; "
            "later ones go to the dead-letter sink.",
        )
        parser.add_argument(
            "--output_time_format",
            choices=("epoch", "epoch_ms", "iso"),
            default=None,
            help="Times in outputs: epoch seconds, epoch milliseconds or ISO-8601 UTC "
            "(default: the pipeline's own, see its help).",
        )


class EventTimeOptions(PipelineOptions):
    """Where event time comes from and how much disorder the watermark allows."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--event_time_field",
            default="timestamp",
            help="Payload field with the event time (falls back to 'ts').",
        )
        parser.add_argument(
            "--time_format",
            default="auto",
            choices=TIME_FORMATS,
            help="auto: numbers > 1e11 are epoch ms, other numbers epoch s, strings ISO-8601.",
        )
        parser.add_argument(
            "--max_out_of_orderness",
            type=non_negative,
            default=2.0,
            help="Seconds the source watermark trails the newest event time.",
        )
        parser.add_argument(
            "--idle_timeout",
            type=non_negative,
            default=5.0,
            help="Seconds a caught-up partition must stay quiet before it stops "
            "holding the watermark back.",
        )


def event_time_policy(options: PipelineOptions) -> EventTimePolicy:
    o = options.view_as(EventTimeOptions)
    return EventTimePolicy(
        field=o.event_time_field,
        time_format=o.time_format,
        max_out_of_orderness_s=o.max_out_of_orderness,
        idle_timeout_s=o.idle_timeout,
    )


class DeadLetterOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--dead_letter_sink",
            type=sink_uri,
            default=None,
            help="URI for records that cannot be parsed or processed "
            "(JSON with error, error_type, step, payload, source, timestamp).",
        )


class KafkaClientOptions(PipelineOptions):
    """Client settings that do not belong in a URI (security, client id)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--kafka_config",
            action="append",
            default=None,
            help="kafka-python setting KEY=VALUE (repeatable), e.g. security_protocol=SASL_SSL. "
            "VALUE may be env:NAME or file:PATH to keep secrets off the command line. "
            "BEAMSTREAM_KAFKA_<KEY> environment variables are read too.",
        )


_SECRET_KEYS = ("password", "secret", "token", "key")


def kafka_config(options: PipelineOptions) -> dict[str, Any]:
    """kafka-python settings from BEAMSTREAM_KAFKA_* variables and --kafka_config."""
    config: dict[str, Any] = {}
    for name, value in os.environ.items():
        if name.startswith("BEAMSTREAM_KAFKA_"):
            config[name[len("BEAMSTREAM_KAFKA_"):].lower()] = value
    for item in options.view_as(KafkaClientOptions).kafka_config or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--kafka_config {key!r}: expected KEY=VALUE")
        config[key.strip()] = _resolve_secret(key.strip(), value.strip())
    return config


def _resolve_secret(key: str, value: str) -> Any:
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"--kafka_config {key}: environment variable {name} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        with open(value[5:], encoding="utf-8") as handle:
            return handle.read().strip()
    if value.isdigit():
        return int(value)
    return value


def metrics_namespace(text: str) -> str:
    """argparse type: empty, or a Prometheus name prefix (letters, digits, '_')."""
    from beamstream.ops.prometheus import NAMESPACE_PATTERN

    if text and not NAMESPACE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a metric name prefix (letters, digits and '_', "
            "not starting with a digit)"
        )
    return text


class OperationsOptions(PipelineOptions):
    """Exporting a run's metrics to Prometheus, by scrape or by push."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--metrics_port",
            type=int,
            default=None,
            help="Serve the run's metrics in the Prometheus text format on "
            "http://HOST:PORT/metrics while it runs (DirectRunner).",
        )
        parser.add_argument(
            "--pushgateway",
            default=None,
            help="Prometheus Pushgateway URL (http://host:9091): metrics are PUT to "
            "/metrics/job/<job>/app/<app> every --push_interval seconds and at the end.",
        )
        parser.add_argument(
            "--push_interval",
            type=non_negative,
            default=10.0,
            help="Seconds between pushes to --pushgateway while a streaming run goes on.",
        )
        parser.add_argument(
            "--app_name",
            default=None,
            help="The 'app' label of exported metrics (default: the pipeline's name); "
            "the 'job' label is --job_name, or 'beamstream'.",
        )
        parser.add_argument(
            "--metrics_namespace",
            type=metrics_namespace,
            default="",
            help="Prefix for exported metric names: NS_messages_consumed_total "
            "(default: none, messages_consumed_total).",
        )
        parser.add_argument(
            "--metrics_linger",
            type=non_negative,
            default=0.0,
            help="With --metrics_port: after the run ends, keep serving the final values "
            "until they have been scraped once or this many seconds have passed.",
        )


class ShutdownOptions(PipelineOptions):
    """What SIGINT/SIGTERM does to a streaming run on the DirectRunner."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--on_stop",
            choices=("finish", "flush"),
            default="finish",
            help="On SIGINT/SIGTERM stop reading, then: finish = let what was read be "
            "processed and keep open windows open (their records stay uncommitted and are "
            "rebuilt on restart); flush = close every open window now (partial results) "
            "and commit everything read.",
        )

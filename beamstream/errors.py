"""Errors that are the user's to fix: shown as one line, not a traceback."""

from __future__ import annotations

from beamstream.event_time import EventTimeError
from beamstream.io.clients import ClientError
from beamstream.io.kafka_reader import KafkaReadError
from beamstream.io.uris import UriError
from beamstream.models.artifacts import ModelArtifactError
from beamstream.pipelines.launch import OptionsError

USER_ERRORS: tuple[type[BaseException], ...] = (
    UriError,
    ClientError,
    OptionsError,
    KafkaReadError,
    EventTimeError,
    ModelArtifactError,
    FileNotFoundError,
)

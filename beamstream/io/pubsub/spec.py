"""What a Pub/Sub read asks for, and pulled messages as ``MessageBatch``es in event time."""

from __future__ import annotations

from dataclasses import dataclass

from beamstream.event_time import EventTimeError, parse_time
from beamstream.io.clients.base import ReceivedMessage
from beamstream.io.elements import MessageBatch
from beamstream.io.event_time_policy import EventTimePolicy

PARTITION = 0  # a subscription is one stream as far as the watermark goes


def attribute_time_us(value: str) -> int:
    """Beam's timestamp-attribute convention: epoch milliseconds or RFC 3339."""
    text = value.strip()
    return parse_time(text, "epoch_ms" if text.lstrip("-").isdigit() else "iso")


@dataclass(frozen=True)
class PubSubReadSpec:
    """What the feed reads and how it stamps event time; picklable."""

    subscription: str  # full path projects/P/subscriptions/S
    event_time: EventTimePolicy = EventTimePolicy(field="timestamp")
    timestamp_attribute: str | None = None
    id_label: str | None = None
    with_attributes: bool = True
    max_batch: int = 1000
    pull_timeout_s: float = 0.5
    delete_on_close: bool = False  # a subscription this read created for a topic


def event_time_of(spec: PubSubReadSpec, message: ReceivedMessage) -> int | None:
    """Event time in micros, or None (the record still flows; it does not move the watermark)."""
    if spec.timestamp_attribute:
        raw = message.attributes.get(spec.timestamp_attribute)
        if raw is None:
            return None
        try:
            return attribute_time_us(raw)
        except EventTimeError:
            return None
    return spec.event_time.of_payload(message.value, message.timestamp_ms)


def to_batch(
    spec: PubSubReadSpec, messages: list[ReceivedMessage], watermark_us: int
) -> MessageBatch:
    """One pull as a ``MessageBatch`` (offsets are -1: Pub/Sub has none)."""
    return MessageBatch(
        source=spec.subscription,
        partition=PARTITION,
        values=[m.value for m in messages],
        offsets=[-1] * len(messages),
        timestamps_ms=[m.timestamp_ms for m in messages],
        event_times_us=[event_time_of(spec, m) for m in messages],
        keys=[m.key for m in messages],
        headers=[
            tuple((k, v.encode("utf-8")) for k, v in m.attributes.items())
            if spec.with_attributes
            else ()
            for m in messages
        ],
        watermark_us=watermark_us,
    )

"""The Pub/Sub feed's event-time and batch shaping (no service needed)."""

from __future__ import annotations

import pytest

from beamstream.event_time import EventTimeError
from beamstream.io.clients import ReceivedMessage
from beamstream.io.event_time_policy import EventTimePolicy
from beamstream.io.pubsub.spec import PubSubReadSpec, attribute_time_us, event_time_of, to_batch

SUB = "projects/beamstream-test/subscriptions/frames-sub"


def test_attribute_time_is_epoch_ms_or_rfc3339() -> None:
    assert attribute_time_us("1700000000123") == 1_700_000_000_123_000
    assert attribute_time_us("2023-11-14T22:13:20.5Z") == 1_700_000_000_500_000
    with pytest.raises(EventTimeError):
        attribute_time_us("yesterday")


def test_event_time_prefers_the_attribute_when_configured() -> None:
    m = ReceivedMessage(b'{"timestamp": 1000}', attributes={"ts": "2000"}, timestamp_ms=3000)
    # payload numbers below 1e11 are seconds, attributes are epoch ms (Beam's convention)
    assert event_time_of(PubSubReadSpec(SUB, timestamp_attribute="ts"), m) == 2_000_000
    assert (
        event_time_of(PubSubReadSpec(SUB, EventTimePolicy(field="timestamp")), m) == 1_000_000_000
    )
    assert event_time_of(PubSubReadSpec(SUB, EventTimePolicy(field=None)), m) == 3_000_000
    missing = ReceivedMessage(b"{}", attributes={})
    assert event_time_of(PubSubReadSpec(SUB, timestamp_attribute="ts"), missing) is None


def test_batch_keeps_keys_attributes_and_the_announced_watermark() -> None:
    msgs = [
        ReceivedMessage(b'{"ts": 5}', key=b"k", attributes={"a": "1"}, timestamp_ms=9),
        ReceivedMessage(b"junk", attributes={"a": "2"}),
    ]
    batch = to_batch(PubSubReadSpec(SUB, EventTimePolicy(field="ts")), msgs, watermark_us=42)
    assert batch.values == [b'{"ts": 5}', b"junk"]
    assert batch.keys == [b"k", None]
    assert batch.headers == [(("a", b"1"),), (("a", b"2"),)]
    assert batch.event_times_us == [5_000_000, None]
    assert batch.watermark_us == 42
    assert [m.source for m in batch.messages()] == [SUB, SUB]
    no_attrs = to_batch(PubSubReadSpec(SUB, with_attributes=False), msgs, 0)
    assert no_attrs.headers == [(), ()]


def test_redeliveries_are_dropped_by_id_label_or_message_id_and_acked():
    from beamstream.runners.direct.pubsub_feed import PubSubSource

    acked: list[str] = []

    def message(message_id: str, **attributes: str) -> ReceivedMessage:
        return ReceivedMessage(
            b"{}",
            attributes=attributes,
            message_id=message_id,
            _ack=lambda: acked.append(message_id),
        )

    by_id = PubSubSource(PubSubReadSpec(SUB), subscriber=None)
    assert [m.message_id for m in by_id.fresh([message("1"), message("2")])] == ["1", "2"]
    assert by_id.fresh([message("2"), message("3")])[0].message_id == "3"
    by_label = PubSubSource(PubSubReadSpec(SUB, id_label="uid"), subscriber=None)
    assert len(by_label.fresh([message("4", uid="a"), message("5", uid="a")])) == 1
    assert acked == ["2", "5"]  # a redelivery is acked at once, never passed on


class _Subscriber:
    def __init__(self) -> None:
        self.extended: list[str] = []

    def commit(self) -> None:
        pass

    def extend_deadline(self, messages, seconds) -> None:
        self.extended.extend(m.message_id for m in messages)


def test_safe_events_are_acked_and_held_ones_kept_alive():
    from beamstream.runners.direct.feed_core import Held
    from beamstream.runners.direct.pubsub_feed import PubSubSource

    acked: list[str] = []
    one, two = (
        ReceivedMessage(b"{}", message_id=i, _ack=lambda i=i: acked.append(i)) for i in "12"
    )
    subscriber = _Subscriber()
    source = PubSubSource(PubSubReadSpec(SUB), subscriber=subscriber)
    source.acknowledge([Held(1, 0, 0, [one])], None, final=False)
    source._last_extend = 0.0  # the deadline extension is due
    source.keep_alive([Held(2, 0, 0, [two])])
    assert acked == ["1"] and subscriber.extended == ["2"]

"""The Pub/Sub feed's event-time and batch shaping (no service needed)."""

from __future__ import annotations

import itertools

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


class _Slots(list):
    """FeedProgress's shared slots: acked, sink watermark, stop, stopped, probe."""


class _Subscriber:
    def commit(self) -> None:
        pass

    def extend_deadline(self, messages, seconds) -> None:
        pass


def test_a_flush_announces_the_final_watermark_only_after_in_flight_events_are_taken_in():
    from beamstream.io.elements import MAX_WATERMARK
    from beamstream.runners.direct.feed import FeedProgress
    from beamstream.runners.direct.pubsub_feed import _PubSubFeedRun

    feed = _PubSubFeedRun.__new__(_PubSubFeedRun)  # no subscription: only the drain runs
    feed._held, feed._subscriber, feed._last_extend = [], _Subscriber(), 0.0
    slots = _Slots([1, 0, 2, 0, 0, 0, 0, 0])  # event 1 taken in, event 3 was sent last
    steps = feed._drain(FeedProgress(slots), seq=3, flush=True)
    early = [next(steps).watermark_us for _ in range(5)]
    assert MAX_WATERMARK not in early  # events 2 and 3 are still in flight
    slots[0] = 3
    assert MAX_WATERMARK in [step.watermark_us for step in itertools.islice(steps, 5)]

"""FeedCore over an in-memory source: watermarks, markers, acknowledgements, drains.

The source is a test double of the ``FeedSource`` interface (scripted reads),
and ``FeedProgress`` reads a plain list of slots, as the feed process reads
shared memory: [acked, sink watermark, stop, stopped, probe, ...].
"""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from apache_beam.transforms.window import FixedWindows

from beamstream.io.elements import MAX_WATERMARK, NO_WATERMARK, MessageBatch
from beamstream.io.kafka.spec import KafkaReadSpec
from beamstream.runners.direct.feed import (
    STOP_FINISH,
    STOP_FLUSH,
    FeedProgress,
    FeedStep,
    ProgressMarker,
)
from beamstream.runners.direct.feed_core import Delivery, FeedCore, FeedTimeouts, Held
from beamstream.runners.direct.finality import Finality
from beamstream.runners.direct.kafka_feed import KafkaSource

S = 1_000_000
ACKED, SINK, STOP, STOPPED, PROBE = range(5)
GRPC_MESSAGE_LIMIT = 4 * 2**20  # what Beam's TestStream client accepts
FAST = FeedTimeouts(drain_s=1.0, settle_s=0.1, keep_open_s=0.0, pause_s=0.0)


def batch(times_s: list[float], offsets: list[int] | None = None, partition: int = 0):
    offsets = offsets if offsets is not None else list(range(len(times_s)))
    return MessageBatch(
        source="t",
        partition=partition,
        values=[b"{}"] * len(times_s),
        offsets=offsets,
        event_times_us=[int(t * S) for t in times_s],
    )


def slots(probe: bool = False) -> list[int]:
    return [0, NO_WATERMARK, 0, 0, int(probe), 0, 0, 0]


class MemorySource:
    """Scripted reads; tokens are the batches' offsets; records what it acknowledged.

    ``rises``: the source watermark (s) after each read, as a reader's would move.
    """

    def __init__(self, reads=(), watermark_s: float | None = None, rises=()):
        self.reads: deque[list[MessageBatch]] = deque(reads)
        self.rises: deque[float] = deque(rises)
        self.watermark = NO_WATERMARK if watermark_s is None else int(watermark_s * S)
        self.acknowledges = True
        self.done = False
        self.acked: list[list[int]] = []
        self.finals: list[bool] = []

    def watermark_us(self) -> int:
        return self.watermark

    def read(self) -> list[Delivery]:
        if self.rises:
            self.watermark = int(self.rises.popleft() * S)
        return [Delivery(b, b.offsets) for b in self.reads.popleft()] if self.reads else []

    def acknowledge(self, released: list[Held], sink_watermark, final: bool) -> None:
        self.acked.extend(h.token for h in released)
        self.finals.append(final)

    def keep_alive(self, held) -> None:
        pass

    def close(self) -> None:
        pass


def core(source, finality: Finality | None = None) -> FeedCore:
    return FeedCore(source, batched=True, finality=finality, timeouts=FAST, linger_s=0)


def fixed(size_s: int, lateness_s: int = 0) -> Finality:
    return Finality([(FixedWindows(size_s), lateness_s * S)])


def test_the_watermark_never_passes_an_element_the_pipeline_has_not_taken_in():
    source = MemorySource([[], [batch([110, 112])]], rises=[100, 200])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    assert next(steps) == FeedStep([], 100 * S)  # no record read yet
    first = next(steps)
    assert first.seq == 1 and first.watermark_us == 110 * S  # 200 s would pass the 110 s record
    assert next(steps).watermark_us is None  # still in flight
    progress[ACKED] = 1
    assert next(steps).watermark_us == 200 * S


def test_batches_carry_the_watermark_announced_when_they_were_read():
    source = MemorySource([[batch([10])], [], [batch([300])]], rises=[20, 20, 400])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    assert next(steps).elements[0][0].watermark_us == NO_WATERMARK
    progress[ACKED] = 1
    assert next(steps).watermark_us == 20 * S
    assert next(steps).elements[0][0].watermark_us == 20 * S


def test_a_resumed_read_announces_its_watermark_before_any_record():
    source = MemorySource([[batch([5])]], watermark_s=50)
    steps = core(source).steps(FeedProgress(slots()))
    first, second = next(steps), next(steps)
    assert first == FeedStep([], 50 * S)
    assert second.elements and second.elements[0][0].watermark_us == 50 * S


def test_events_are_numbered_by_the_feed_increasing_and_units_carry_their_number():
    source = MemorySource([[batch([1])], [], [batch([2], [1]), batch([3], [0], partition=1)]])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    got = [next(steps) for _ in range(3)]
    assert [s.seq for s in got] == [1, 0, 2]
    assert len(got[2].elements) == 2  # one event, two batches
    progress[ACKED] = 1
    next(steps)
    assert source.acked == [[0]]  # only event 1's batch


def test_a_marker_goes_out_when_the_watermark_passes_a_pending_finality_with_a_probe():
    for probe in (True, False):
        source = MemorySource([[batch([5])]], rises=[12])
        progress = slots(probe)
        steps = core(source, fixed(10)).steps(FeedProgress(progress))
        assert next(steps).seq == 1  # final at 10 s; announced 5 s (in flight)
        progress[ACKED] = 1
        assert next(steps).elements == []  # announces 12 s; no marker at 5 s
        marker = next(steps)
        if probe:
            assert marker.elements == [(ProgressMarker(), 12 * S)] and marker.seq == 2
            assert next(steps).elements == []  # that marker covers it until it comes back
        else:
            assert marker.elements == []


def test_nothing_is_acknowledged_before_the_pipeline_took_it_in():
    source = MemorySource([[batch([1])], [batch([2], [1])]])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    for _ in range(4):
        next(steps)
    assert source.acked == []
    progress[ACKED] = 1
    next(steps)
    assert source.acked == [[0]]
    progress[ACKED] = 2
    next(steps)
    assert source.acked == [[0], [1]]


def test_with_a_probe_nothing_is_acknowledged_before_its_windows_are_final():
    source = MemorySource([[batch([10, 70, 65])]])  # newest window [60, 120) + 2 s
    progress = slots(probe=True)
    steps = core(source, fixed(60, 2)).steps(FeedProgress(progress))
    next(steps)
    progress[ACKED], progress[SINK] = 1, 121 * S
    next(steps)
    assert source.acked == []
    progress[SINK] = 122 * S
    next(steps)
    assert source.acked == [[0, 1, 2]]


class MemoryReader:
    """Stands in for KafkaBatchReader: scripted batches, commits recorded."""

    def __init__(self, reads):
        self.spec = KafkaReadSpec(("127.0.0.1:9",), ("t",), group="g")
        self.reads = deque(reads)
        self.done = False
        self.watermark_us = NO_WATERMARK
        self.commits: list[tuple[dict, int | None, bool]] = []

    def read(self):
        return self.reads.popleft() if self.reads else []

    def commit(self, offsets, watermark_us=None, asynchronous=False):
        self.commits.append((offsets, watermark_us, asynchronous))


def test_kafka_offsets_are_never_committed_past_an_earlier_unsafe_batch():
    reader = MemoryReader([[batch([100], [0])], [batch([10], [1]), batch([10], [0], 1)]])
    progress = slots(probe=True)
    steps = core(KafkaSource(reader), fixed(60)).steps(FeedProgress(progress))  # type: ignore[arg-type]
    next(steps), next(steps)
    progress[ACKED], progress[SINK] = 2, 60 * S  # offset 1 and partition 1 are final
    next(steps)
    assert reader.commits == [({("t", 1): 1}, 60 * S, True)]  # not partition 0: offset 0 waits
    progress[SINK] = 120 * S
    next(steps)
    assert reader.commits[-1] == ({("t", 0): 2}, 120 * S, True)


def drain(steps, progress: list[int], limit: int = 10**7) -> list[FeedStep]:
    """Steps until the feed marks itself stopped (and one more)."""
    out = []
    for step in itertools.islice(steps, limit):
        out.append(step)
        if progress[STOPPED]:
            break
    return out


def test_a_stop_sends_the_final_watermark_only_after_every_event_is_taken_in():
    source = MemorySource([[batch([1])], [batch([2], [1])], [batch([3], [2])]])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    for _ in range(3):
        next(steps)
    progress[ACKED], progress[STOP] = 1, STOP_FLUSH
    early = [next(steps) for _ in range(5)]
    assert MAX_WATERMARK not in [s.watermark_us for s in early]  # events 2 and 3 in flight
    assert not progress[STOPPED]
    progress[ACKED] = 3
    assert MAX_WATERMARK in [s.watermark_us for s in drain(steps, progress)]
    assert progress[STOPPED]


def test_a_flush_marks_the_newest_final_time_and_commits_everything_taken_in():
    source = MemorySource([[batch([10])], [batch([70], [1])]])
    progress = slots(probe=True)
    steps = core(source, fixed(60)).steps(FeedProgress(progress))
    next(steps), next(steps)
    progress[ACKED], progress[STOP] = 2, STOP_FLUSH
    progress[SINK] = 60 * S  # the first window is written, the second is not
    tail = drain(steps, progress)
    markers = [s for s in tail if s.elements]
    assert markers[0].elements == [(ProgressMarker(), 120 * S)] and markers[0].seq == 3
    assert tail.index(markers[0]) < [s.watermark_us for s in tail].index(MAX_WATERMARK)
    # The sinks never reported 120 s here (the drain timed out): a flush closed
    # every window, so all that was taken in is committed anyway, at the end.
    assert source.acked == [[0], [1]] and source.finals[-1]


def test_a_finish_leaves_records_of_open_windows_unacknowledged():
    source = MemorySource([[batch([10])], [batch([70], [1])]])
    progress = slots(probe=True)
    steps = core(source, fixed(60)).steps(FeedProgress(progress))
    next(steps), next(steps)
    progress[ACKED], progress[SINK], progress[STOP] = 2, 60 * S, STOP_FINISH
    tail = drain(steps, progress)
    assert progress[STOPPED]
    assert MAX_WATERMARK not in [s.watermark_us for s in tail]
    assert not any(s.elements for s in tail)
    assert source.acked == [[0]]  # the window [60, 120) is still open
    assert next(steps) == FeedStep([], None)  # the stream stays open


def test_a_bounded_read_that_ends_drains_as_a_flush():
    source = MemorySource([[batch([1])]])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    next(steps)
    source.done = True
    progress[ACKED] = 1
    tail = drain(steps, progress)
    assert MAX_WATERMARK in [s.watermark_us for s in tail]
    assert source.acked == [[0]] and progress[STOPPED]


def test_a_source_that_acknowledges_nothing_holds_nothing_once_taken_in():
    source = MemorySource([[batch([10])]])
    source.acknowledges = False
    progress = slots(probe=True)
    feed = core(source, fixed(60))
    steps = feed.steps(FeedProgress(progress))
    next(steps)
    progress[ACKED] = 1  # the sinks never report the window final
    next(steps)
    assert source.acked == [[0]]  # released: no commit waits on it, so nothing keeps it


def test_reads_while_the_runner_is_behind_join_the_next_event():
    """At most ``max_ahead`` events wait in the runner; later reads coalesce into one."""
    reads = [[batch([t], [i])] for i, t in enumerate([10, 11, 12, 13, 14])]
    source = MemorySource(reads, rises=[5, 6, 7, 8, 9])
    progress = slots()
    steps = core(source).steps(FeedProgress(progress))
    sent = [next(steps) for _ in range(5)]
    assert [s.seq for s in sent] == [1, 2, 0, 0, 0]  # reads 3-5 held back (0: no event)
    assert all(not s.elements for s in sent[2:])
    progress[ACKED] = 2  # the runner took in both events
    joined = next(steps)  # (the source has nothing more: this read adds nothing)
    assert joined.seq == 3
    assert [e.offsets for e, _ in joined.elements] == [[2], [3], [4]]
    assert joined.watermark_us == 9 * S  # the newest watermark goes out with them


def test_reading_pauses_while_the_runner_is_behind_and_enough_is_pending():
    reads = [[batch([t] * 10, list(range(10 * i, 10 * i + 10)))] for i, t in enumerate(range(5))]
    source = MemorySource(reads)
    progress = slots()
    feed = FeedCore(
        source, batched=True, timeouts=FAST, max_ahead=1, max_pending_bytes=300, linger_s=0
    )
    steps = feed.steps(FeedProgress(progress))
    assert next(steps).seq == 1
    for _ in range(5):
        assert next(steps).seq == 0  # behind: two reads (181 bytes each) pending, then no more
    assert len(source.reads) == 2
    progress[ACKED] = 1
    joined = next(steps)
    # not behind any more: all that is pending goes in one event, at once
    # (another read first could wait on the broker)
    assert joined.seq == 2 and [e.offsets[0] for e, _ in joined.elements] == [10, 20]
    assert len(source.reads) == 2


def test_big_batches_travel_in_events_below_the_grpc_limit_acknowledged_once_whole():
    from beamstream.runners.direct.feed_server import element_event

    big = MessageBatch(
        source="t",
        partition=0,
        # ~8.3 MB of distinct objects (pickle would send one repeated object once)
        values=[bytes([i % 256]) * 1000 for i in range(8000)],
        offsets=list(range(8000)),
        event_times_us=[10 * S] * 8000,
    )
    source = MemorySource([[big]], rises=[5])
    progress = slots()
    feed = FeedCore(source, batched=True, timeouts=FAST, max_ahead=100, linger_s=0)
    steps = feed.steps(FeedProgress(progress))
    events = [next(steps) for _ in range(3)]
    offsets = [o for step in events for e, _ in step.elements for o in e.offsets]
    assert offsets == list(range(8000))  # all of it, in order, in 3 events
    for step in events:
        assert element_event(step.seq, step.elements).ByteSize() <= GRPC_MESSAGE_LIMIT
    progress[ACKED] = 2
    next(steps)
    assert source.acked == []  # the batch is not acknowledged before its last part is in
    progress[ACKED] = 3
    next(steps)
    assert source.acked == [list(range(8000))]


def test_a_record_too_large_for_an_event_fails_the_feed_with_its_position():
    import pytest

    from beamstream.runners.direct.chunks import RecordTooLarge

    huge = MessageBatch(source="t", partition=3, values=[b"x" * 4_000_000], offsets=[77])
    steps = core(MemorySource([[huge]])).steps(FeedProgress(slots()))
    with pytest.raises(RecordTooLarge, match="partition 3, offset 77"):
        next(steps)



@pytest.mark.parametrize("batched", [True, False])
def test_many_small_reads_coalesce_into_events_that_encode_below_the_grpc_limit(batched):
    # Found by a slow live run: each small batch costs its own pickled header
    # (class, source name, columns) and framing, beyond its records' bytes; an
    # event of coalesced small batches encoded to 4.97 MB and ended the stream.
    from beamstream.runners.direct.feed_server import element_event

    source_name = "kafka://broker-1.example.internal:9092/frames-from-the-edge-cameras"
    small = [
        MessageBatch(
            source=source_name,
            partition=i % 4,
            values=[b'{"timestamp":1700000000.123,"uid":"user-0042"}'],
            offsets=[10_000_000 + i],
            event_times_us=[(1_700_000_000 + i // 1000) * S],
        )
        for i in range(60_000)
    ]
    source = MemorySource([small])
    progress = slots()
    feed = FeedCore(
        source, batched=batched, timeouts=FAST, max_pending_bytes=64 * 2**20, linger_s=0
    )
    steps = feed.steps(FeedProgress(progress))
    sent = 0
    while sent < len(small):
        step = next(steps)
        if not step.elements:
            continue
        size = element_event(step.seq, step.elements).ByteSize()
        assert size <= GRPC_MESSAGE_LIMIT, f"event {step.seq}: {size:,} bytes"
        sent += sum(e.size if batched else 1 for e, _ in step.elements)
        progress[ACKED] = step.seq
    assert sent == len(small)


class FakeTime:
    """``time`` for the feed core: sleeping moves a virtual clock."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def test_events_go_out_at_most_every_linger_while_records_trickle_in(monkeypatch):
    # The runner pays per event, and each per-minute window keeps a partial
    # result per bundle: a trickle must not become an event per poll.
    from beamstream.runners.direct import feed_core

    clock = FakeTime()
    monkeypatch.setattr(feed_core, "time", clock)
    reads = [[batch([100 + i], [i])] for i in range(6)]
    source = MemorySource(reads, rises=[99 + i for i in range(6)])
    progress = slots()
    feed = FeedCore(source, batched=True, timeouts=FAST, linger_s=0.05)
    steps = feed.steps(FeedProgress(progress))
    sent: list[tuple[float, list[int]]] = []
    while len(source.reads) or feed._pending:  # noqa: SLF001 - until all is sent
        step = next(steps)
        if step.elements:
            sent.append((clock.now, [o for e, _ in step.elements for o in e.offsets]))
            progress[ACKED] = step.seq  # the runner keeps up: only the linger holds events
    assert sent[0] == (1000.0, [0])  # the first record after a quiet spell goes at once
    gaps = [later - earlier for (earlier, _), (later, _) in zip(sent, sent[1:])]
    assert min(gaps) >= 0.05 - 1e-9
    assert [o for _, offsets in sent for o in offsets] == list(range(6))

"""Local streaming: a live event feed into the streaming DirectRunner.

The streaming DirectRunner cannot run an unbounded splittable DoFn
(apache/beam#26577), and Prism must be downloaded. What it does run is a
``TestStream`` whose events come from a gRPC ``TestStreamService`` endpoint,
the mechanism Interactive Beam uses to feed it live data. This module serves
that endpoint from a child process that reads the broker (so the reader and
the runner do not share one GIL: design.md measured 23k vs 42k frames/s), and
turns a ``Feed`` (elements plus announced watermarks) into TestStream events.

Flow control: the runner reads the gRPC stream eagerly into an unbounded queue,
so the feed paces itself. Every event carries a sequence number; the first
step after the TestStream acknowledges it through shared memory, and the feed
keeps at most ``max_in_flight`` events ahead of that. The same acknowledgement
drives offset commits. The runner stops a TestStream that is silent for 30 s,
so an idle feed sends watermark heartbeats.

Progress and stopping: ``CommitAfterWrites`` puts a probe after a pipeline's
sinks; its event-time timers fire once the sinks' output watermark has passed
a time, and it reports that *sink watermark* to the feed, which then knows
which windows are written for good (and which offsets it may commit).
``request_stop()`` asks every feed of this process to stop reading, either
letting what was read finish (``finish``) or flushing every open window
(``flush``), and to commit what the sinks have written.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from typing import Any, Protocol

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.coders.coders import VarIntCoder
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from beamstream.io.elements import NO_WATERMARK
from beamstream.log_flood import quiet_kafka_client_logs

_LOG = logging.getLogger(__name__)
HEARTBEAT_S = 5.0


@dataclass
class FeedStep:
    """What a feed produced in one step: elements and/or a new watermark."""

    elements: list[tuple[Any, int]]  # (value, event-time micros)
    watermark_us: int | None = None


class Feed(Protocol):
    """A source of steps; it commits what ``progress`` says the pipeline has done."""

    def steps(self, progress: FeedProgress) -> Iterator[FeedStep]: ...

    def close(self) -> None: ...


# Shared-memory slots between the pipeline process and the feed process.
_ACKED, _SINK_WATERMARK, _STOP, _STOPPED, _PROBE = range(5)
_SLOTS = 8
STOP_NONE, STOP_FINISH, STOP_FLUSH = 0, 1, 2


class FeedProgress:
    """The feed's view of the pipeline: called, it returns the last acknowledged event."""

    def __init__(self, slots):
        self._slots = slots

    def __call__(self) -> int:
        return self._slots[_ACKED]

    def sink_watermark(self) -> int | None:
        """Event time the sinks' output watermark has passed; None without a probe."""
        return self._slots[_SINK_WATERMARK] if self._slots[_PROBE] else None

    def stop_requested(self) -> int:
        return self._slots[_STOP]

    def mark_stopped(self) -> None:
        self._slots[_STOPPED] = 1


FeedFactory = Callable[[], Feed]


class _BatchCoder(coders.Coder):
    """Pickle protocol 5: the fastest way to move batches of bytes here."""

    def encode(self, value):
        return pickle.dumps(value, protocol=5)

    def decode(self, encoded):
        return pickle.loads(encoded)

    def is_deterministic(self):
        return False


# -- child process -------------------------------------------------------------------


def _serve(factory: FeedFactory, acked_memory: str, max_in_flight: int, parent_pid: int) -> None:
    """Child process body: serve the feed on a free loopback port, print the port."""
    import grpc
    from apache_beam.portability.api import (
        beam_interactive_api_pb2_grpc,
        beam_runner_api_pb2,
    )

    Event = beam_runner_api_pb2.TestStreamPayload.Event
    TimestampedElement = beam_runner_api_pb2.TestStreamPayload.TimestampedElement
    stopped = threading.Event()
    coder = _BatchCoder()
    shared = shared_memory.SharedMemory(name=acked_memory)
    # The parent owns (and unlinks) the segment; do not let this process's
    # resource tracker claim it too.
    resource_tracker.unregister(shared._name, "shared_memory")  # type: ignore[attr-defined]
    assert shared.buf is not None
    acked_view = shared.buf.cast("q")
    progress = FeedProgress(acked_view)
    acked = progress

    def heartbeat(last_watermark: int | None):
        # A repeated watermark keeps the runner from giving up on a quiet feed
        # (it stops a TestStream that is silent for 30 s).
        return Event(
            watermark_event=Event.AdvanceWatermark(
                new_watermark=last_watermark if last_watermark is not None else NO_WATERMARK
            )
        )

    class Servicer(beam_interactive_api_pb2_grpc.TestStreamServiceServicer):
        def Events(self, request, context):  # noqa: N802 - gRPC method name
            """Relays the feed's steps; the feed runs in its own thread.

            A broker call that blocks (an outage, a slow commit) then only
            delays data: heartbeats keep flowing, and the run survives it.
            """
            context.add_callback(stopped.set)
            feed = factory()
            steps: queue.Queue = queue.Queue(maxsize=4)
            producer = threading.Thread(
                target=_produce_steps, args=(feed, progress, steps, stopped), daemon=True
            )
            producer.start()
            seq = 0
            last_sent = time.monotonic()
            last_watermark = None
            try:
                while not stopped.is_set():
                    try:
                        step = steps.get(timeout=0.5)
                    except queue.Empty:
                        if time.monotonic() - last_sent > HEARTBEAT_S:
                            yield heartbeat(last_watermark)
                            last_sent = time.monotonic()
                        continue
                    if step is _END:
                        return
                    if isinstance(step, BaseException):
                        raise step
                    while seq - acked() >= max_in_flight and not stopped.is_set():
                        if time.monotonic() - last_sent > HEARTBEAT_S:
                            yield heartbeat(last_watermark)
                            last_sent = time.monotonic()
                        time.sleep(0.002)
                    if step.elements:
                        seq += 1
                        elements = [
                            TimestampedElement(
                                encoded_element=coder.encode((seq, value)), timestamp=ts
                            )
                            for value, ts in step.elements
                        ]
                        yield Event(element_event=Event.AddElements(elements=elements))
                        last_sent = time.monotonic()
                    if step.watermark_us is not None:
                        last_watermark = step.watermark_us
                    if step.watermark_us is not None or (
                        time.monotonic() - last_sent > HEARTBEAT_S
                    ):
                        yield heartbeat(last_watermark)
                        last_sent = time.monotonic()
            finally:
                stopped.set()
                producer.join(10)
                feed.close()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    beam_interactive_api_pb2_grpc.add_TestStreamServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    while not stopped.wait(0.5):
        if os.getppid() != parent_pid:  # the pipeline process is gone
            break
    server.stop(grace=2).wait()
    acked_view.release()
    shared.close()


_END = object()


def _produce_steps(feed: Feed, progress: FeedProgress, steps: queue.Queue, stopped) -> None:
    """Runs the feed into a small queue (bounded: the feed cannot run far ahead)."""

    def put(item) -> bool:
        while not stopped.is_set():
            try:
                steps.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    try:
        for step in feed.steps(progress):
            if not put(step):
                return
    except BaseException as exc:  # handed to the gRPC stream, which fails the run
        put(exc)
        return
    put(_END)


def _child_main() -> None:
    """Entry point of ``python -m beamstream.runners.direct.live_feed``: the spec comes on stdin."""
    logging.basicConfig(level=logging.WARNING, format="live-feed: %(levelname)s %(message)s")
    quiet_kafka_client_logs()
    factory, acked_memory, max_in_flight, parent_pid = pickle.loads(sys.stdin.buffer.read())
    _serve(factory, acked_memory, max_in_flight, parent_pid)


# -- parent side ---------------------------------------------------------------------

_FEEDS: dict[str, _FeedProcess] = {}


class _FeedProcess:
    """The child process serving one feed, and the shared progress slots.

    Started with ``python -m`` rather than multiprocessing's spawn, which would
    re-run the user's main script in the child.
    """

    def __init__(self, factory: FeedFactory, max_in_flight: int):
        self._shared: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=8 * _SLOTS
        )
        assert self._shared.buf is not None
        self._slots = self._shared.buf.cast("q")
        for slot in range(_SLOTS):
            self._slots[slot] = 0
        self._slots[_SINK_WATERMARK] = NO_WATERMARK
        self.process = subprocess.Popen(
            [sys.executable, "-m", "beamstream.runners.direct.live_feed"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(
            pickle.dumps((factory, self._shared.name, max_in_flight, os.getpid()))
        )
        self.process.stdin.close()
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("the live feed process failed to start (see its error above)")
        self.endpoint = f"127.0.0.1:{line.split()[1]}"

    def ack(self, seq: int) -> None:
        if self._shared is not None and seq > self._slots[_ACKED]:
            self._slots[_ACKED] = seq

    def attach_probe(self) -> None:
        if self._shared is not None:
            self._slots[_PROBE] = 1

    def report_sink_watermark(self, micros: int) -> None:
        if self._shared is not None and micros > self._slots[_SINK_WATERMARK]:
            self._slots[_SINK_WATERMARK] = micros

    def request_stop(self, mode: int) -> None:
        if self._shared is not None:
            self._slots[_STOP] = mode

    @property
    def stop_mode(self) -> int:
        return self._slots[_STOP] if self._shared is not None else STOP_NONE

    @property
    def stopped(self) -> bool:
        if self._shared is None or self.process.poll() is not None:
            return True
        return bool(self._slots[_STOPPED])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._shared is not None:
            self._slots.release()
            self._shared.close()
            self._shared.unlink()
            self._shared = None


def request_stop(flush: bool = False) -> int:
    """Asks every live feed of this process to stop reading; returns how many."""
    feeds = [feed for feed in _FEEDS.values() if not feed.stopped]
    for feed in feeds:
        feed.request_stop(STOP_FLUSH if flush else STOP_FINISH)
    return len(feeds)


def stop_requested() -> bool:
    """Whether ``request_stop`` has asked the live feeds of this process to stop."""
    return any(feed.stop_mode != STOP_NONE for feed in _FEEDS.values())


def all_stopped() -> bool:
    return all(feed.stopped for feed in _FEEDS.values())


@atexit.register
def _stop_all() -> None:
    for feed in list(_FEEDS.values()):
        feed.stop()


HEARTBEAT_TAG = "progress"


class ProgressMarker:
    """An element a feed sends only to move the sink probe to its timestamp.

    A feed that stops sends one timestamped at the time from which all it read
    is final; once the probe's timer fires there, every result is written.
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProgressMarker)

    def __hash__(self) -> int:
        return 0


def with_progress_marker(
    elements: list[tuple[Any, int]], seq: int, at_us: int
) -> tuple[list[tuple[Any, int]], int]:
    """A step's elements plus a marker at ``at_us``, and the step's event number.

    A step that had no elements becomes a new event, so the feed counts it.
    """
    return [*elements, (ProgressMarker(), at_us)], (seq if elements else seq + 1)


def until_taken_in(progress: FeedProgress, seq: int, deadline: float) -> Iterator[FeedStep]:
    """Empty steps until the pipeline has taken in event ``seq`` (or the deadline).

    Sent before a final watermark: the runner may apply a watermark event
    before earlier element events, which would make their records late.
    """
    while progress() < seq and time.monotonic() < deadline:
        yield FeedStep([], None)
        time.sleep(0.02)


class _AckAndUnwrap(beam.DoFn):
    """Acknowledges each event to the feed and passes its value on.

    Once per event it also emits a heartbeat, timestamped at the event's
    newest event time, for the progress probe behind the sinks.
    """

    def __init__(self, feed_id: str):
        self._feed_id = feed_id
        self._feed: _FeedProcess | None = None
        self._last_seq = 0

    def setup(self):
        self._feed = _FEEDS.get(self._feed_id)

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        seq, value = element
        if isinstance(value, ProgressMarker):
            if self._feed is not None:
                self._feed.ack(seq)
            yield beam.pvalue.TaggedOutput(
                HEARTBEAT_TAG, window.TimestampedValue(("", seq), timestamp)
            )
            return
        if seq != self._last_seq:
            self._last_seq = seq
            if self._feed is not None:
                self._feed.ack(seq)
            times = getattr(value, "event_times_us", None)
            newest = max((t for t in times if t is not None), default=None) if times else None
            yield beam.pvalue.TaggedOutput(
                HEARTBEAT_TAG,
                window.TimestampedValue(
                    ("", seq), newest / 1e6 if newest is not None else timestamp
                ),
            )
        yield value


class _ReportSinkWatermark(beam.DoFn):
    """A watermark timer behind the sinks: when it fires at T, every result up to T is written.

    At most one timer is pending, so a steady stream of heartbeats cannot keep
    pushing it ahead of the watermark.
    """

    PENDING = ReadModifyWriteStateSpec("pending", VarIntCoder())
    LATEST = ReadModifyWriteStateSpec("latest", VarIntCoder())
    FIRE = TimerSpec("fire", TimeDomain.WATERMARK)

    def __init__(self, feed_ids: list[str]):
        self._feed_ids = feed_ids

    def setup(self):
        self._feeds = [_FEEDS[f] for f in self._feed_ids if f in _FEEDS]
        for feed in self._feeds:
            feed.attach_probe()

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        latest=beam.DoFn.StateParam(LATEST),
        fire=beam.DoFn.TimerParam(FIRE),
    ):
        if pending.read() is None:
            pending.write(timestamp.micros)
            fire.set(timestamp)
        elif timestamp.micros > (latest.read() or timestamp.micros - 1):
            latest.write(timestamp.micros)  # re-armed there when the pending one fires

    @on_timer(FIRE)
    def fired(
        self,
        timestamp=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        latest=beam.DoFn.StateParam(LATEST),
        fire=beam.DoFn.TimerParam(FIRE),
    ):
        for feed in self._feeds:
            feed.report_sink_watermark(timestamp.micros)
        later = latest.read()
        latest.clear()
        if later is not None and later > timestamp.micros:
            pending.write(later)
            fire.set(Timestamp(micros=later))
        else:
            pending.clear()
        return []


class CommitAfterWrites(beam.PTransform):
    """Tells the live feeds of ``heartbeats`` how far the given writes have got.

    ``written`` are the PCollections sinks return; their output watermark moves
    only once everything before it has been written.
    """

    def __init__(self, feed_ids: list[str]):
        super().__init__()
        self._feed_ids = feed_ids

    def expand(self, pcolls):
        global_windows = [
            pcoll | f"Global{i}" >> beam.WindowInto(window.GlobalWindows())
            for i, pcoll in enumerate(pcolls)
        ]
        keyed = (
            global_windows
            | "Progress" >> beam.Flatten()
            | "Key" >> beam.Map(lambda _: ("", 0)).with_output_types(tuple[str, int])
        )
        return keyed | "ReportSinkWatermark" >> beam.ParDo(_ReportSinkWatermark(self._feed_ids))


class ReadLiveFeed(beam.PTransform):
    """Streams a feed into the local streaming DirectRunner through TestStream.

    Only for the DirectRunner: the feed process lives beside the pipeline.
    After expansion, ``heartbeats`` and ``feed_id`` let ``CommitAfterWrites``
    report sink progress back to the feed.
    """

    def __init__(self, factory: FeedFactory, max_in_flight: int = 8):
        super().__init__()
        self._factory = factory
        self._max_in_flight = max_in_flight
        self.feed_id: str | None = None
        self.heartbeats: beam.PCollection | None = None

    def expand(self, pbegin):
        from apache_beam.testing.test_stream import TestStream

        self.feed_id = uuid.uuid4().hex
        process = _FeedProcess(self._factory, self._max_in_flight)
        _FEEDS[self.feed_id] = process
        outputs = (
            pbegin
            | "LiveFeed" >> TestStream(coder=_BatchCoder(), endpoint=process.endpoint)
            | "Ack" >> beam.ParDo(_AckAndUnwrap(self.feed_id)).with_outputs(
                HEARTBEAT_TAG, main="records"
            )
        )
        self.heartbeats = outputs[HEARTBEAT_TAG]
        return outputs.records


if __name__ == "__main__":
    _child_main()

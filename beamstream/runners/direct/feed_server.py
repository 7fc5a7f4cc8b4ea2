"""The feed process: serves a feed as Beam's ``TestStreamService`` on a loopback port.

Started by ``feed_process`` with ``python -m beamstream.runners.direct.feed_server``
(so the reader and the runner do not share one GIL: design.md measured 23k
vs 42k frames/s). Flow control: the runner reads the gRPC stream eagerly into
an unbounded queue, so the server paces itself, at most ``max_in_flight``
events ahead of what the pipeline acknowledged; the runner stops a TestStream
that is silent for 30 s, so an idle feed sends watermark heartbeats.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import sys
import threading
import time
from concurrent import futures

from beamstream.io.elements import NO_WATERMARK
from beamstream.log_flood import quiet_kafka_client_logs
from beamstream.runners.direct.feed import (
    HEARTBEAT_S,
    BatchCoder,
    Feed,
    FeedFactory,
    FeedProgress,
    report_failure,
)
from beamstream.runners.direct.slots import FeedSlots


def element_event(seq: int, elements: list[tuple[object, int]]):
    """The ``AddElements`` event that carries one feed event's elements as ``(seq, value)``."""
    from apache_beam.portability.api import beam_runner_api_pb2

    Event = beam_runner_api_pb2.TestStreamPayload.Event
    TimestampedElement = beam_runner_api_pb2.TestStreamPayload.TimestampedElement
    coder = BatchCoder()
    return Event(
        element_event=Event.AddElements(
            elements=[
                TimestampedElement(encoded_element=coder.encode((seq, value)), timestamp=ts)
                for value, ts in elements
            ]
        )
    )


def _serve(factory: FeedFactory, slots_path: str, max_in_flight: int, parent_pid: int) -> None:
    """Child process body: serve the feed on a free loopback port, print the port."""
    import grpc
    from apache_beam.portability.api import (
        beam_interactive_api_pb2_grpc,
        beam_runner_api_pb2,
    )

    Event = beam_runner_api_pb2.TestStreamPayload.Event
    stopped = threading.Event()
    slots = FeedSlots(slots_path)
    progress = FeedProgress(slots)
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
            seq = 0  # the last event sent (numbered by the feed)
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
                        # The runner's TestStream thread dies of a stream error
                        # without failing the run: say it where the run looks.
                        report_failure(slots_path, step)
                        raise step
                    while seq - acked() >= max_in_flight and not stopped.is_set():
                        if time.monotonic() - last_sent > HEARTBEAT_S:
                            yield heartbeat(last_watermark)
                            last_sent = time.monotonic()
                        time.sleep(0.002)
                    if step.elements:
                        if step.seq <= seq:  # the feed numbers events; acks rely on it
                            raise RuntimeError(f"feed event {step.seq} sent after {seq}")
                        seq = step.seq
                        yield element_event(seq, step.elements)
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
    slots.close()


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
    """Entry point of the feed process: the feed factory and slots come on stdin."""
    logging.basicConfig(level=logging.WARNING, format="live-feed: %(levelname)s %(message)s")
    quiet_kafka_client_logs()
    factory, slots_path, max_in_flight, parent_pid = pickle.loads(sys.stdin.buffer.read())
    _serve(factory, slots_path, max_in_flight, parent_pid)


if __name__ == "__main__":
    _child_main()

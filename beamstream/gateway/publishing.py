"""Confirmed publishing off the event loop, with bounded memory and bounded waits.

The plain publishers block (``flush`` waits for the broker), so one worker
thread does all publishing. Requests queue as jobs; the worker takes every
job waiting (a group commit), publishes their events, flushes once and
answers each job. That keeps one round trip per batch, not per request,
while every 2xx still means "confirmed by the broker".

Bounds: the events queued or in flight may total at most ``max_pending_bytes``;
a request that cannot get into that budget within ``admission_timeout``, or
whose publish is not confirmed within ``publish_timeout``, gets
``Unavailable`` (the app answers 503 + Retry-After). A job whose request has
already given up is skipped, not published, if the worker has not started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from beamstream.gateway.body import Event
from beamstream.io.clients import Publisher

log = logging.getLogger(__name__)

REQUEST_ID_ATTRIBUTE = "request_id"


class Unavailable(Exception):
    """The sink cannot take the events now; retry later."""


@dataclass
class _Job:
    events: Sequence[Event]
    request_id: str
    size: int
    future: asyncio.Future = field(repr=False)


class _ByteBudget:
    """An async semaphore counted in bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int, timeout: float) -> bool:
        n = min(n, self.limit)  # one oversized job may still run alone
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self.used + n <= self.limit), timeout
                )
            except asyncio.TimeoutError:
                return False
            self.used += n
            return True

    async def release(self, n: int) -> None:
        async with self._cond:
            self.used -= min(n, self.limit)
            self._cond.notify_all()


class PublishGate:
    """Publishes events for requests through one worker thread; see the module doc."""

    def __init__(
        self,
        open_publisher: Callable[[], Publisher],
        publish_timeout: float = 5.0,
        admission_timeout: float = 1.0,
        max_pending_bytes: int = 64 * 1024 * 1024,
        max_batch_events: int = 10_000,
        reopen_after_failure: bool = False,
    ):
        self._open = open_publisher
        self.publish_timeout = publish_timeout
        self.admission_timeout = admission_timeout
        self.max_batch_events = max_batch_events
        self._reopen = reopen_after_failure
        self._budget = _ByteBudget(max_pending_bytes)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ingest-publish")
        self._publisher: Publisher | None = None
        self._task: asyncio.Task | None = None
        self.last_error: str | None = None  # None after a confirmed batch
        self.last_ok: float | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_publisher)
        self._executor.shutdown(wait=True)

    async def publish(self, events: Sequence[Event], request_id: str) -> None:
        """Returns once the broker confirmed every event; raises ``Unavailable`` otherwise."""
        size = sum(len(e.value) for e in events) + 64 * len(events)
        if not await self._budget.acquire(size, self.admission_timeout):
            raise Unavailable("gateway busy: too many events waiting for the broker")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(events, request_id, size, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), self.publish_timeout)
        except asyncio.TimeoutError:
            future.cancel()  # the worker skips it if it has not started it
            raise Unavailable(
                f"broker did not confirm within {self.publish_timeout}s"
            ) from None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            count = len(batch[0].events)
            while count < self.max_batch_events and not self._queue.empty():
                job = self._queue.get_nowait()
                batch.append(job)
                count += len(job.events)
            live = [job for job in batch if not job.future.done()]
            try:
                if live:
                    error = await loop.run_in_executor(self._executor, self._send, live)
                    for job in live:
                        if job.future.done():
                            continue
                        if error is None:
                            job.future.set_result(None)
                        else:
                            job.future.set_exception(Unavailable("broker unavailable"))
            finally:
                for job in batch:
                    await self._budget.release(job.size)

    def _send(self, jobs: list[_Job]) -> str | None:
        """Worker thread: publish and flush one batch; the error text, or None when confirmed."""
        try:
            if self._publisher is None:
                self._publisher = self._open()
            publisher = self._publisher
            for job in jobs:
                attributes = {REQUEST_ID_ATTRIBUTE: job.request_id}
                for event in job.events:
                    publisher.publish(event.value, key=event.key, attributes=attributes)
            publisher.flush(timeout=self.publish_timeout)
        except Exception as exc:  # noqa: BLE001 - not confirmed, whatever the client raised
            # ClientError/PublishError from our clients, but also KafkaError or
            # GoogleAPICallError straight from publish(): every one means a 503.
            return self._failed(exc)
        self.last_error, self.last_ok = None, time.time()
        return None

    def _failed(self, exc: BaseException) -> str:
        message = f"{type(exc).__name__}: {exc}"
        self.last_error = message
        log.warning("publish failed: %s", message)
        if self._reopen:
            self._close_publisher()
        return message

    def _close_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken client must not mask
                log.warning("closing publisher: %s: %s", type(exc).__name__, exc)

"""``RunContext``: what one run owns, so that two runs in one process share nothing.

``run_pipeline`` creates it after the pipeline is built and before it runs.
It holds the Kafka offsets that finalizers defer until the run has succeeded
(batch on the DirectRunner or Prism) and, on the DirectRunner, the live feeds
it started in place of the pipeline's streaming reads. Side effects that
``expand`` used to have (a feed process, a Pub/Sub subscription) happen here,
at run time, and end with the run.
"""

from __future__ import annotations

import apache_beam as beam

from beamstream import runners
from beamstream.io.kafka.commits import DeferredCommits
from beamstream.io.kafka.read import deferred_reads


class RunContext:
    """The deferred commits and live feeds of one run."""

    def __init__(self, pipeline: beam.Pipeline):
        self.deferred = DeferredCommits(deferred_reads(pipeline))
        self.feeds: list = []  # FeedProcess, on the DirectRunner only
        if runners.is_direct_runner(pipeline):
            from beamstream.runners.direct import hooks, live_reads

            hooks.install()
            try:
                self.feeds = live_reads.prepare(pipeline)
            except BaseException:
                self.deferred.close()
                raise

    def succeeded(self) -> int:
        """Commits what the run's batch reads deferred; returns how many partitions."""
        return self.deferred.commit()

    def failed(self) -> None:
        self.deferred.discard()

    def request_stop(self, flush: bool) -> int:
        """Asks the live feeds to stop reading; returns how many were still reading."""
        if not self.feeds:
            return 0
        from beamstream.runners.direct.feed_process import request_stop

        return request_stop(self.feeds, flush)

    def all_stopped(self) -> bool:
        if not self.feeds:
            return True
        from beamstream.runners.direct.feed_process import all_stopped

        return all_stopped(self.feeds)

    def feed_failure(self) -> str | None:
        """Why a live feed failed (its stream ended with an error), if one did."""
        for feed in self.feeds:
            failure = feed.failure()
            if failure is not None:
                return failure
        return None

    def close(self) -> None:
        """Forgets the deferred commits and stops the feeds (once the run is over)."""
        self.deferred.close()
        for feed in self.feeds:
            feed.stop()
        self.feeds = []

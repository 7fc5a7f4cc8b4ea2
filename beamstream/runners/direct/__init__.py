"""What exists only because of Beam's local streaming DirectRunner (BundleBasedDirectRunner).

That runner cannot run an unbounded splittable DoFn (apache/beam#26577), so
local streaming reads arrive through a live feed: a child process serving a
``TestStream`` endpoint (``feed_server``, ``feed_process``, ``read_feed``), fed by
``feed_core``, one loop over a source that ``kafka_feed`` or ``pubsub_feed``
supply, which acknowledges what the sinks have written for good (Kafka
offsets in order: ``commit_ledger``). ``shutdown`` stops such runs gracefully; ``window_gc`` and
``direct_counters`` fix two of the runner's own behaviours and are installed
only when that runner runs.
"""

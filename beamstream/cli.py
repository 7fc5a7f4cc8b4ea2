"""The ``beamstream`` command: pipelines and tools by name.

Each subcommand lives in its own module and is imported only when used, so
``beamstream --help`` is fast and one broken optional dependency does not take
the whole command down.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

from beamstream.log_flood import quiet_kafka_client_logs

# name -> (module, function taking argv, one-line summary)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("beamstream.demo", "main", "run the frame-metrics pipeline on the bundled sample"),
    "frames": ("beamstream.pipelines.frames", "main", "pipeline: frames/s and unique users/min"),
    "publish": ("beamstream.tools.publish", "main", "publish a JSON Lines file to Kafka/Pub/Sub"),
    "tail": ("beamstream.tools.tail", "main", "print messages from Kafka/Pub/Sub as they arrive"),
    "topics": ("beamstream.tools.topics", "main", "create, delete or list Kafka / Pub/Sub topics"),
    "plot": ("beamstream.plot", "main", "draw frames/s and unique users/min to a PNG"),
    "train": ("beamstream.models.train", "main", "train the digits or the anomaly model"),
    "infer": ("beamstream.pipelines.infer", "main", "pipeline: model predictions for requests"),
    "detect": ("beamstream.pipelines.detect", "main", "pipeline: anomalies in metric aggregates"),
    "collect": ("beamstream.collect.producer", "main", "publish this host's metrics (psutil)"),
    "store": ("beamstream.pipelines.store", "main", "pipeline: metric samples into SQL"),
    "metrics": ("beamstream.pipelines.metrics", "main", "pipeline: Prometheus-style window stats"),
    "query": ("beamstream.tools.query", "main", "stored metric window stats / last-N records"),
    "templates": ("beamstream.deploy.metadata", "main", "write/check Flex Template metadata"),
    "ingest": ("beamstream.gateway.server", "main", "HTTP gateway: JSON events into Kafka/Pub/Sub"),
    "replay": ("beamstream.tools.replay", "main", "re-publish dead letters once fixed"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: beamstream <command> [options]   (beamstream <command> --help for its options)",
        "",
        "Apache Beam pipelines and tools for streaming metrics and inference over "
        "Kafka and Pub/Sub.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"beamstream: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # an embedding program keeps its own logging
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        quiet_kafka_client_logs()
    module_name, function, _ = COMMANDS[name]
    entry = getattr(importlib.import_module(module_name), function)
    from beamstream.errors import USER_ERRORS
    from beamstream.launch.run import RunFailed

    try:
        return int(entry(rest) or 0)
    except USER_ERRORS as exc:
        print(f"beamstream {name}: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:  # the runner has logged the traceback
        print(f"beamstream {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"beamstream {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

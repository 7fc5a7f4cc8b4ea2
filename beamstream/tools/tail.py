"""``beamstream tail URI``: print messages as they arrive, for looking at outputs.

JSON payloads are pretty-printed; anything else is printed as text. Reading
acknowledges (Pub/Sub) or commits to ``--group`` (Kafka): on a Pub/Sub
subscription shared with a real consumer, tail takes messages away from it,
so point it at a topic (a temporary subscription is created and deleted) or
pass ``--no-ack``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from beamstream.io.clients import ReceivedMessage, open_subscriber
from beamstream.tools._common import one_line_errors


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream tail",
        description=(
            "Print messages from kafka://host:port/topic, pubsub://projects/P/subscriptions/S, "
            "or pubsub://projects/P/topics/T (creates a temporary subscription that sees "
            "only messages published after it starts)."
        ),
    )
    parser.add_argument("uri")
    parser.add_argument("--max", type=int, default=None, help="stop after N messages")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="Kafka: start at the earliest offset "
        "(a Pub/Sub subscription always delivers its backlog)",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="Kafka group to commit to / Pub/Sub subscription to create on a topic",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a message",
    )
    parser.add_argument(
        "--meta", action="store_true", help="print source, key and attributes before each payload"
    )
    parser.add_argument(
        "--compact", action="store_true", help="one line per message, no pretty-printing"
    )
    parser.add_argument(
        "--no-ack", action="store_true", help="do not acknowledge / commit what was printed"
    )
    return parser


def render(message: ReceivedMessage, compact: bool = False) -> str:
    """Pretty JSON when the payload is JSON, the text otherwise."""
    try:
        payload = json.loads(message.value)
    except (ValueError, UnicodeDecodeError):
        return message.text()
    if compact:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(payload, ensure_ascii=False, indent=2)


def _meta(message: ReceivedMessage) -> str:
    where = message.message_id or message.source
    parts = [f"# {where}"]
    if message.key is not None:
        parts.append(f"key={message.key.decode('utf-8', errors='replace')}")
    if message.timestamp is not None:
        parts.append(message.timestamp.isoformat())
    parts += [f"{k}={v}" for k, v in sorted(message.attributes.items())]
    return " ".join(parts)


@one_line_errors("tail")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    shown = 0
    last = time.monotonic()
    with open_subscriber(args.uri, from_beginning=args.from_beginning, group=args.group) as sub:
        try:
            while args.max is None or shown < args.max:
                room = 500 if args.max is None else min(500, args.max - shown)
                batch = sub.receive(room, timeout=1.0)
                if not batch:
                    if (
                        args.idle_timeout is not None
                        and time.monotonic() - last >= args.idle_timeout
                    ):
                        break
                    continue
                last = time.monotonic()
                for message in batch:
                    if args.meta:
                        print(_meta(message))
                    print(render(message, args.compact))
                    if not args.no_ack:
                        message.ack()
                shown += len(batch)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
    print(f"{shown} message(s)", file=sys.stderr)
    return 0

"""``beamstream publish FILE --sink URI``: publish a JSON Lines file to Kafka or Pub/Sub.

The generic form of the "read a sample file and publish it" producer every
original app carried. Lines go out as they are (one message per non-blank
line); ``--key-field`` sets the Kafka key / Pub/Sub ordering key from a JSON
field, ``--timestamp-attribute`` copies the line's event time into an
attribute (epoch ms) for sources that read event time from attributes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from beamstream.event_time import EventTimeError, event_time_us
from beamstream.io.clients import open_publisher
from beamstream.io.uris import parse_sink
from beamstream.tools._common import one_line_errors


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream publish",
        description="Publish a JSON Lines file to a kafka:// or pubsub:// topic.",
    )
    parser.add_argument("file", help="JSON Lines file ('-' for stdin)")
    parser.add_argument(
        "--sink",
        required=True,
        help="kafka://host:port/topic or pubsub://projects/P/topics/T",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="messages per second (default: as fast as possible)",
    )
    parser.add_argument(
        "--key-field", default=None, help="JSON field whose value becomes the message key"
    )
    parser.add_argument(
        "--loop", action="store_true", help="start over at the end of the file, until interrupted"
    )
    parser.add_argument(
        "--timestamp-attribute",
        default=None,
        help="also set this attribute/header to the line's event time in epoch ms",
    )
    parser.add_argument(
        "--event-time-field", default=None, help="event-time field (default: timestamp or ts)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _lines(path: str, loop: bool) -> Iterator[str]:
    while True:
        if path == "-":
            yield from (line for line in sys.stdin if line.strip())
            return
        with open(path, encoding="utf-8") as handle:
            yield from (line.rstrip("\r\n") for line in handle if line.strip())
        if not loop:
            return


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


class _Progress:
    """A progress bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, total: int | None, quiet: bool):
        self._total = total
        self._quiet = quiet
        self._tty = sys.stderr.isatty()
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self._quiet or (not final and now - self._last < (0.2 if self._tty else 5.0)):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        if self._total:
            frac = min(done / self._total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"[{bar:<30}] {done:,}/{self._total:,} {rate:,.0f} msgs/s"
        else:
            text = f"{done:,} messages {rate:,.0f} msgs/s"
        if self._tty:
            sys.stderr.write("\r" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _key_and_attributes(line: str, args) -> tuple[str | None, dict[str, str] | None]:
    if not args.key_field and not args.timestamp_attribute:
        return None, None
    try:
        record = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(record, dict):
        return None, None
    key = None
    if args.key_field and record.get(args.key_field) is not None:
        key = str(record[args.key_field])
    attributes = None
    if args.timestamp_attribute:
        try:
            micros = event_time_us(record, args.event_time_field)
            attributes = {args.timestamp_attribute: str(micros // 1000)}
        except EventTimeError:
            pass
    return key, attributes


@one_line_errors("publish")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sink = parse_sink(args.sink)
    if args.file != "-" and not Path(args.file).is_file():
        raise FileNotFoundError(f"no such file: {args.file}")
    total = None if args.loop else _count_lines(args.file)
    progress = _Progress(total, args.quiet)
    started = time.monotonic()
    sent = 0
    with open_publisher(sink) as publisher:
        try:
            for line in _lines(args.file, args.loop):
                if args.rate:
                    delay = started + sent / args.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                key, attributes = _key_and_attributes(line, args)
                publisher.publish(line, key=key, attributes=attributes)
                sent += 1
                if sent % 10_000 == 0:
                    publisher.flush()
                progress.update(sent)
        except KeyboardInterrupt:
            print("interrupted; flushing", file=sys.stderr)
        publisher.flush()
    progress.update(sent, final=True)
    elapsed = time.monotonic() - started
    print(f"published {sent} messages to {sink.redacted()} in {elapsed:.1f}s")
    return 0

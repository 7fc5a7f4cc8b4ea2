"""``beamstream ingest``: run the HTTP ingest gateway, or make a tokens-file entry.

    beamstream ingest --sink kafka://127.0.0.1:9092/events --tokens-file tokens.txt
    beamstream ingest hash-token --name device-a >> tokens.txt   # token shown on stderr
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from beamstream.gateway.app import GatewayConfig, make_app
from beamstream.gateway.auth import TokensFileError, TokenStore, hash_token, new_token
from beamstream.gateway.publishing import PublishGate
from beamstream.io.clients import Publisher, open_publisher
from beamstream.io.uris import KafkaUri, PubSubUri, UriError, parse_uri

log = logging.getLogger(__name__)


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="beamstream ingest",
        description="HTTP ingest gateway: POST JSON events to /v1/events, each one becomes a "
        "message on the sink topic (confirmed before the answer). "
        "'beamstream ingest hash-token --help' makes tokens-file entries.",
    )
    p.add_argument("--sink", required=True, help="kafka://host:port/topic or pubsub://projects/P/topics/T")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--key-field", help="event field whose value becomes the message key")
    p.add_argument(
        "--tokens-file",
        help="bearer tokens, one 'sha256:<hex> [name]' per line; without it, no "
        "authentication, which is allowed on a loopback address only",
    )
    p.add_argument("--max-body-bytes", type=_positive(int), default=1024 * 1024,
                   help="larger bodies get 413 (default 1 MiB)")
    p.add_argument("--publish-timeout", type=_positive(float), default=5.0,
                   help="seconds to wait for the broker's confirmation before 503 (default 5)")
    p.add_argument("--admission-timeout", type=_positive(float), default=1.0,
                   help="seconds a request may wait for room in the pending budget (default 1)")
    p.add_argument("--max-pending-bytes", type=_positive(int), default=64 * 1024 * 1024,
                   help="events waiting for the broker, in bytes, before requests wait (64 MiB)")
    return p


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def publisher_factory(
    sink: KafkaUri | PubSubUri, publish_timeout: float
) -> Callable[[], Publisher]:
    """Opens the sink's publisher with client timeouts that fit the gateway's bounded wait."""
    if isinstance(sink, KafkaUri):
        ms = int(publish_timeout * 1000)
        config: dict[str, Any] = {
            "max_block_ms": ms,  # send() blocks at most this long for metadata/buffer
            "request_timeout_ms": max(ms, 1000),
            # Not confirmed in time → 503; let the record expire soon after rather
            # than arrive much later (a retried request would duplicate it anyway).
            "delivery_timeout_ms": max(ms, 1000) + 100,
            "linger_ms": 2,
            "reconnect_backoff_max_ms": 1000,  # notice a returning broker within ~1 s
        }
        return lambda: open_publisher(sink, **config)
    return lambda: open_publisher(sink)


def build(args: argparse.Namespace) -> tuple[web.Application, PublishGate]:
    sink = parse_uri(args.sink)
    if not isinstance(sink, (KafkaUri, PubSubUri)):
        raise UriError(f"{sink.redacted()}: the gateway publishes to kafka:// or pubsub:// only")
    if isinstance(sink, KafkaUri):
        sink.topic  # noqa: B018 - raises UriError unless exactly one topic
    elif sink.is_subscription:
        raise UriError(f"{sink.redacted()}: publish to a topic, not a subscription")
    tokens = TokenStore.load(args.tokens_file) if args.tokens_file else None
    gate = PublishGate(
        publisher_factory(sink, args.publish_timeout),
        publish_timeout=args.publish_timeout,
        admission_timeout=args.admission_timeout,
        max_pending_bytes=args.max_pending_bytes,
        # A failed Pub/Sub publish pauses its ordering key in that client: start afresh.
        reopen_after_failure=isinstance(sink, PubSubUri),
    )
    config = GatewayConfig(
        sink=sink.redacted(),
        key_field=args.key_field,
        tokens=tokens,
        max_body_bytes=args.max_body_bytes,
    )
    return make_app(config, gate), gate


def hash_token_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="beamstream ingest hash-token",
        description="Print a tokens-file line on stdout. Without --stdin a new random "
        "token is made and shown once on stderr; give it to the client.",
    )
    p.add_argument("--name", default="", help="label stored next to the hash (e.g. the client)")
    p.add_argument("--stdin", action="store_true", help="hash a token read from stdin instead")
    args = p.parse_args(list(argv))
    if args.stdin:
        token = sys.stdin.readline().strip()
    else:
        token = new_token()
        print(f"token (store it now, it is not kept): {token}", file=sys.stderr)
    try:
        line = hash_token(token)
    except TokensFileError as exc:
        print(f"beamstream ingest hash-token: error: {exc}", file=sys.stderr)
        return 2
    print(f"{line} {args.name}".rstrip())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "hash-token":
        return hash_token_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.tokens_file and not _is_loopback(args.host):
        parser.error(f"--host {args.host} is not a loopback address: give --tokens-file")
    try:
        app, _gate = build(args)
    except (TokensFileError, OSError) as exc:
        print(f"beamstream ingest: error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("beamstream.gateway").setLevel(logging.INFO)
    auth = "bearer tokens" if args.tokens_file else "NO authentication (loopback only)"
    print(
        f"beamstream ingest: http://{args.host}:{args.port}/v1/events -> "
        f"{parse_uri(args.sink).redacted()} ({auth})",
        file=sys.stderr,
    )
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0

"""``beamstream topics create|delete|list URI``: Kafka topics, Pub/Sub topics and subscriptions.

beamstream topics create kafka://localhost:9092/frames --partitions 4
beamstream topics create pubsub://projects/P/topics/frames
beamstream topics create pubsub://projects/P/subscriptions/frames-sub --topic frames
beamstream topics list kafka://localhost:9092      |   pubsub://projects/P
beamstream topics delete kafka://localhost:9092/frames
"""

from __future__ import annotations

import argparse
from typing import Any

from beamstream.io.clients import ClientError
from beamstream.io.uris import (
    KafkaUri,
    PubSubUri,
    UriError,
    parse_kafka_uri,
    parse_pubsub_uri,
    parse_uri,
)
from beamstream.tools._common import one_line_errors


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream topics",
        description="Create, delete or list Kafka topics and Pub/Sub topics/subscriptions.",
    )
    parser.add_argument("action", choices=("create", "delete", "list"))
    parser.add_argument(
        "uri",
        help="kafka://host:port/topic[,topic] | pubsub://projects/P/topics/T | "
        "pubsub://projects/P/subscriptions/S; for list: kafka://host:port or pubsub://projects/P",
    )
    parser.add_argument(
        "--partitions", type=int, default=1, help="Kafka: partitions of a new topic"
    )
    parser.add_argument(
        "--replication-factor", type=int, default=1, help="Kafka: replicas of a new topic"
    )
    parser.add_argument(
        "--topic", default=None, help="Pub/Sub: topic (name or path) of a new subscription"
    )
    parser.add_argument(
        "--ack-deadline",
        type=int,
        default=60,
        help="Pub/Sub: ack deadline (s) of a new subscription",
    )
    parser.add_argument(
        "--exist-ok", action="store_true", help="create: no error when it already exists"
    )
    return parser


def _list_target(text: str) -> KafkaUri | PubSubUri:
    """``kafka://host:port`` or ``pubsub://projects/P`` (validated with a placeholder name)."""
    body = text.strip().rstrip("/")
    if body.startswith("kafka://") and body.count("/") == 2:
        body += "/placeholder"
    elif body.startswith("pubsub://") and body.count("/") == 3:
        body += "/topics/placeholder"
    elif not body.startswith(("kafka://", "pubsub://")):
        raise UriError(f"{text}: topics list takes kafka://host:port or pubsub://projects/P")
    try:
        return parse_kafka_uri(body) if body.startswith("kafka://") else parse_pubsub_uri(body)
    except UriError as exc:
        raise UriError(str(exc).replace(body, text)) from None


# -- Kafka ---------------------------------------------------------------------------


def _kafka_admin(uri: KafkaUri):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(
            bootstrap_servers=list(uri.bootstrap_servers), client_id="beamstream-topics"
        )
    except KafkaError as exc:
        raise ClientError(
            f"cannot reach Kafka at {','.join(uri.bootstrap_servers)}: {type(exc).__name__}: {exc}"
        ) from exc


def _kafka(action: str, uri: KafkaUri, args) -> list[str]:
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

    admin = _kafka_admin(uri)
    try:
        if action == "list":
            names = sorted(t for t in admin.list_topics() if not t.startswith("__"))
            described = (
                {
                    t.get("name", t.get("topic")): len(t.get("partitions") or [])
                    for t in admin.describe_topics(names)
                }
                if names
                else {}
            )
            return [f"{name}\t{described.get(name, '?')} partition(s)" for name in names]
        out = []
        for topic in uri.topics:
            try:
                if action == "create":
                    admin.create_topics([NewTopic(topic, args.partitions, args.replication_factor)])
                    out.append(f"created kafka topic {topic} ({args.partitions} partition(s))")
                else:
                    admin.delete_topics([topic])
                    out.append(f"deleted kafka topic {topic}")
            except TopicAlreadyExistsError:
                if not args.exist_ok:
                    raise ClientError(f"Kafka topic {topic!r} already exists") from None
                out.append(f"kafka topic {topic} already exists")
            except UnknownTopicOrPartitionError:
                raise ClientError(f"Kafka topic {topic!r} does not exist") from None
            except KafkaError as exc:
                raise ClientError(f"Kafka topic {topic!r}: {type(exc).__name__}: {exc}") from exc
        return out
    finally:
        admin.close()


# -- Pub/Sub -------------------------------------------------------------------------


def _pubsub_list(uri: PubSubUri) -> list[str]:
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    publisher, subscriber = PublisherClient(), SubscriberClient()
    try:
        project = f"projects/{uri.project}"
        lines = [f"topic\t{t.name}" for t in publisher.list_topics(project=project)]
        lines += [
            f"subscription\t{s.name}\t(topic {s.topic})"
            for s in subscriber.list_subscriptions(project=project)
        ]
        return sorted(lines)
    finally:
        subscriber.close()
        publisher.transport.close()


def _pubsub(action: str, uri: PubSubUri, args) -> list[str]:
    from google.api_core import exceptions
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    what = f"{uri.kind[:-1]} {uri.redacted()}"
    client: Any = SubscriberClient() if uri.is_subscription else PublisherClient()
    try:
        if action == "create" and uri.is_subscription:
            if not args.topic:
                raise ClientError("creating a subscription needs --topic NAME_OR_PATH")
            topic = (
                args.topic
                if args.topic.startswith("projects/")
                else (f"projects/{uri.project}/topics/{args.topic}")
            )
            client.create_subscription(
                name=uri.path, topic=topic, ack_deadline_seconds=args.ack_deadline
            )
        elif action == "create":
            client.create_topic(name=uri.path)
        elif uri.is_subscription:
            client.delete_subscription(subscription=uri.path)
        else:
            client.delete_topic(topic=uri.path)
    except exceptions.AlreadyExists:
        if not args.exist_ok:
            raise ClientError(f"{what} already exists") from None
        return [f"{what} already exists"]
    except exceptions.NotFound:
        target = f"topic {args.topic}" if action == "create" and uri.is_subscription else what
        raise ClientError(f"{target} does not exist") from None
    except exceptions.GoogleAPICallError as exc:
        raise ClientError(f"{what}: {type(exc).__name__}: {exc.message}") from exc
    finally:
        if uri.is_subscription:
            client.close()
        else:
            client.transport.close()
    return [f"{action}d {what}"]


@one_line_errors("topics")
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "list":
        target = _list_target(args.uri)
        lines = (
            _kafka("list", target, args) if isinstance(target, KafkaUri) else _pubsub_list(target)
        )
    else:
        uri = parse_uri(args.uri)
        if isinstance(uri, KafkaUri):
            lines = _kafka(args.action, uri, args)
        elif isinstance(uri, PubSubUri):
            lines = _pubsub(args.action, uri, args)
        else:
            raise UriError(f"{uri.redacted()}: topics takes a kafka:// or pubsub:// URI")
    for line in lines:
        print(line)
    return 0

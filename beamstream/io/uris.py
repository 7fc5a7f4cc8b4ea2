"""Source and sink URIs: the one place that turns option strings into typed endpoints.

Every pipeline option that names where data comes from or goes to is a URI
(design.md, "Contracts"). Parsing them here, once, means a malformed URI fails
at option-parsing time with one clear line instead of deep inside a worker.

    kafka://host:port[,host:port]/topic[,topic]?group=ID&start=...&stop=...
    pubsub://projects/P/subscriptions/S   |   pubsub://projects/P/topics/T
    path/or/glob.jsonl   |   file://path   |   gs://bucket/path   (JSON Lines)
    sqlite:///path.db   |   postgresql://...   |   mysql://...
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from beamstream.errors import UserError


class UriError(UserError, ValueError):
    """A source or sink URI that cannot be used; the message says why."""


START_POSITIONS = ("earliest", "latest", "committed")
# Object stores Beam's FileSystems read and write (JSON Lines there too).
BEAM_FILESYSTEMS = ("gs", "s3", "hdfs", "azfs")
STOP_CONDITIONS = ("never", "end")
COMMIT_MODES = ("finalize", "auto", "none")
KAFKA_CLIENTS = ("kafka-python", "confluent")  # the default first

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# https://cloud.google.com/resource-manager/docs/creating-managing-projects
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_PUBSUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")


@dataclass(frozen=True)
class KafkaUri:
    """A Kafka endpoint: servers, topics and read/commit settings."""

    bootstrap_servers: tuple[str, ...]
    topics: tuple[str, ...]
    group: str | None = None
    start: str = "earliest"  # earliest | latest | committed | a timestamp in epoch ms
    stop: str = "never"  # never | end
    max_records: int | None = None
    max_read_time: float | None = None  # seconds
    commit: str = "finalize"
    client: str = "kafka-python"  # kafka-python | confluent (librdkafka, beamstream[confluent])
    params: dict[str, str] = field(default_factory=dict)

    scheme = "kafka"

    @property
    def topic(self) -> str:
        """The single topic of a sink URI."""
        if len(self.topics) != 1:
            raise UriError(f"{self.redacted()}: a Kafka sink takes exactly one topic")
        return self.topics[0]

    @property
    def bounded(self) -> bool:
        return self.stop != "never" or self.max_records is not None or (
            self.max_read_time is not None
        )

    @property
    def start_timestamp_ms(self) -> int | None:
        return int(self.start) if self.start.isdigit() else None

    def redacted(self) -> str:
        return f"kafka://{','.join(self.bootstrap_servers)}/{','.join(self.topics)}"


@dataclass(frozen=True)
class PubSubUri:
    """A Pub/Sub topic or subscription path."""

    project: str
    kind: str  # "topics" | "subscriptions"
    name: str

    scheme = "pubsub"

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.kind}/{self.name}"

    @property
    def is_subscription(self) -> bool:
        return self.kind == "subscriptions"

    def redacted(self) -> str:
        return f"pubsub://{self.path}"


@dataclass(frozen=True)
class FileUri:
    """JSON Lines files: a path or glob as a source, a shard prefix as a sink."""

    path: str

    scheme = "file"

    def redacted(self) -> str:
        return self.path


@dataclass(frozen=True)
class SqlUri:
    """A database URL in SQLAlchemy form; the password is never printed."""

    url: str
    dialect: str  # sqlite | postgresql | mysql

    scheme = "sql"

    def redacted(self) -> str:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url)


Uri = KafkaUri | PubSubUri | FileUri | SqlUri


def parse_uri(text: str) -> Uri:
    """Parses any source or sink URI; raises UriError with a one-line reason."""
    if not text or not text.strip():
        raise UriError("empty URI")
    text = text.strip()
    scheme, sep, _ = text.partition("://")
    if not sep:
        return FileUri(text)
    scheme = scheme.lower()
    if scheme == "kafka":
        return parse_kafka_uri(text)
    if scheme == "pubsub":
        return parse_pubsub_uri(text)
    if scheme == "file":
        path = unquote(text[len("file://"):])
        if not path:
            raise UriError(f"{text}: file URI has no path")
        return FileUri(path)
    if scheme in BEAM_FILESYSTEMS:
        if not text[len(scheme) + 3:].strip("/"):
            raise UriError(f"{text}: no bucket or path")
        return FileUri(text)  # read and written through Beam's FileSystems
    if scheme in ("sqlite", "postgresql", "postgres", "mysql") or scheme.startswith(
        ("postgresql+", "mysql+", "sqlite+")
    ):
        return parse_sql_uri(text)
    shown = re.sub(r"//[^/@]*@", "//***@", text, count=1)  # it may carry user:password@
    raise UriError(
        f"unknown URI scheme {scheme!r} in {shown!r}: use kafka://, pubsub://, "
        "a file path, file://, gs://, sqlite:///, postgresql:// or mysql://"
    )


def parse_kafka_uri(text: str) -> KafkaUri:
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        raise UriError(
            "kafka URI must not carry credentials; set them with --kafka_config or "
            "BEAMSTREAM_KAFKA_* environment variables"
        )
    servers = tuple(s.strip() for s in netloc.split(",") if s.strip())
    if not servers:
        raise UriError(f"{text}: no bootstrap servers (kafka://host:port/topic)")
    for server in servers:
        m = _HOST_PORT.match(server)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise UriError(f"{text}: bad server {server!r}, expected host:port")
    topics = tuple(t for t in parts.path.strip("/").split(",") if t)
    if not topics:
        raise UriError(f"kafka://{netloc}: no topic (kafka://host:port/topic)")
    for topic in topics:
        if not _TOPIC.match(topic):
            raise UriError(f"{text}: invalid topic name {topic!r}")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    known = {"group", "start", "stop", "max_records", "max_read_time", "commit", "client"}
    start = params.pop("start", "earliest")
    if start not in START_POSITIONS and not start.isdigit():
        raise UriError(
            f"{text}: start={start!r}; use earliest, latest, committed or epoch ms"
        )
    stop = params.pop("stop", "never")
    if stop not in STOP_CONDITIONS:
        raise UriError(f"{text}: stop={stop!r}; use never or end")
    commit = params.pop("commit", "finalize")
    if commit not in COMMIT_MODES:
        raise UriError(f"{text}: commit={commit!r}; use finalize, auto or none")
    client = params.pop("client", "kafka-python")
    if client not in KAFKA_CLIENTS:
        raise UriError(f"{text}: client={client!r}; use {' or '.join(KAFKA_CLIENTS)}")
    group = params.pop("group", None) or None
    if start == "committed" and not group:
        raise UriError(f"{text}: start=committed needs group=ID")
    max_records = _positive(params.pop("max_records", None), "max_records", text, int)
    max_read_time = _positive(params.pop("max_read_time", None), "max_read_time", text, float)
    unknown = sorted(set(params) - known)
    if unknown:
        raise UriError(f"{text}: unknown parameter(s) {', '.join(unknown)}")
    return KafkaUri(
        bootstrap_servers=servers,
        topics=topics,
        group=group,
        start=start,
        stop=stop,
        max_records=max_records,
        max_read_time=max_read_time,
        commit=commit,
        client=client,
    )


def _positive(raw, name: str, text: str, kind):
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise UriError(f"{text}: {name}={raw!r} is not a number") from None
    if value <= 0:
        raise UriError(f"{text}: {name} must be positive")
    return value


def parse_pubsub_uri(text: str) -> PubSubUri:
    body = text[len("pubsub://"):].strip("/")
    segments = body.split("/")
    if len(segments) != 4 or segments[0] != "projects" or segments[2] not in (
        "topics",
        "subscriptions",
    ):
        raise UriError(
            f"{text}: expected pubsub://projects/P/topics/T or "
            "pubsub://projects/P/subscriptions/S"
        )
    _, project, kind, name = segments
    if not _GCP_PROJECT.match(project):
        raise UriError(
            f"{text}: invalid project id {project!r} (6-30 lowercase letters, digits, "
            "hyphens; starts with a letter)"
        )
    if not _PUBSUB_NAME.match(name) or name.lower().startswith("goog"):
        raise UriError(f"{text}: invalid {kind[:-1]} name {name!r}")
    return PubSubUri(project=project, kind=kind, name=name)


def parse_sql_uri(text: str) -> SqlUri:
    scheme = text.split("://", 1)[0].lower()
    dialect = scheme.split("+", 1)[0]
    if dialect == "postgres":
        dialect = "postgresql"
        text = "postgresql" + text[len("postgres"):]
    if dialect == "sqlite":
        if not text.startswith(("sqlite:///", "sqlite+pysqlite:///")):
            raise UriError(f"{text}: use sqlite:///relative.db or sqlite:////abs/path.db")
    elif not urlsplit(text).hostname and "host=" not in text:
        raise UriError(f"{scheme}://...: no host in database URL")
    return SqlUri(url=text, dialect=dialect)


def parse_source(text: str) -> KafkaUri | PubSubUri | FileUri:
    uri = parse_uri(text)
    if isinstance(uri, SqlUri):
        raise UriError(f"{uri.redacted()}: a database is not a message source")
    return uri


def parse_sink(text: str) -> Uri:
    uri = parse_uri(text)
    if isinstance(uri, KafkaUri):
        uri.topic  # noqa: B018 - validates a single topic
    return uri

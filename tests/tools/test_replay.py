"""``beamstream replay``: dead letters back to a sink, from files, Kafka and Pub/Sub."""

from __future__ import annotations

import json

import pytest

from beamstream import cli
from beamstream.dead_letter import dead_letter
from beamstream.io.clients import open_publisher, open_subscriber
from beamstream.tools.replay import replay
from tests.services.ports import unique_name
from tests.support.jsonl import read_shards

BINARY = b"\xff\xfe not utf-8 \x00"


def _letters() -> list[dict]:
    """Dead letters of three error types, one of them of bytes that are not UTF-8."""
    letters = [
        dead_letter(ValueError("bad value"), f'{{"uid": "u{i}", "timestamp": {i}}}'.encode(), "s")
        for i in range(5)
    ]
    letters += [
        dead_letter("too late", f'{{"uid": "late{i}"}}', "s", error_type="LateFrame")
        for i in range(3)
    ]
    letters.append(dead_letter(KeyError("x"), BINARY, "s", source="topic[0]@7"))
    return letters


def _write(path, letters, extra_lines=()):
    lines = [json.dumps(letter) for letter in letters] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")


def _lines(prefix) -> list[bytes]:
    with open(f"{prefix}-00000-of-00001.jsonl", "rb") as handle:
        return [line.rstrip(b"\n") for line in handle]


def test_file_to_file_restores_original_payloads(tmp_path):
    letters = _letters()
    _write(tmp_path / "dead-00000-of-00002.jsonl", letters[:4])
    _write(tmp_path / "dead-00001-of-00002.jsonl", letters[4:], extra_lines=["not a letter"])

    report = replay(str(tmp_path / "dead"), str(tmp_path / "fixed"))

    assert (report.read, report.replayed, report.unreadable) == (10, 9, 1)
    assert report.by_type == {"ValueError": 5, "LateFrame": 3, "KeyError": 1}
    want = [letter["payload"].encode() for letter in letters[:-1]] + [BINARY]
    assert sorted(_lines(tmp_path / "fixed")) == sorted(want)


def test_error_type_filter_and_dry_run_via_cli(tmp_path, capsys):
    _write(tmp_path / "dead.jsonl", _letters())

    assert (
        cli.main(
            [
                "replay",
                f"--source={tmp_path}/dead.jsonl",
                f"--sink={tmp_path}/dry",
                "--error-type",
                "LateFrame",
                "--dry-run",
            ]
        )
        == 0
    )
    line = capsys.readouterr().out
    assert "would replay 3 of 9" in line and "skipped 6" in line
    assert not list(tmp_path.glob("dry*"))

    assert (
        cli.main(
            [
                "replay",
                f"--source={tmp_path}/dead.jsonl",
                f"--sink={tmp_path}/late",
                "--error_type",
                "LateFrame",
                "--error_type",
                "KeyError",
            ]
        )
        == 0
    )
    assert "replayed 4 of 9" in capsys.readouterr().out
    assert sorted(_lines(tmp_path / "late")) == sorted(
        [f'{{"uid": "late{i}"}}'.encode() for i in range(3)] + [BINARY]
    )


def test_frames_dead_letters_replay_into_a_fixed_run(tmp_path):
    """Frames rejected for a missing uid are fixed upstream; their replay is counted then."""
    from beamstream.pipelines import frames

    good = [json.dumps({"timestamp": 1_700_000_000 + i, "uid": f"u{i}"}) for i in range(20)]
    bad = [json.dumps({"timestamp": 1_700_000_030 + i}) for i in range(4)]
    (tmp_path / "in.jsonl").write_text("\n".join(good + bad) + "\n")
    frames.run(
        [
            f"--source={tmp_path}/in.jsonl",
            f"--per_second_sink={tmp_path}/sec",
            f"--per_minute_sink={tmp_path}/min",
            f"--dead_letter_sink={tmp_path}/dead",
        ]
    )
    dead = read_shards(f"{tmp_path}/dead")
    assert [d["error_type"] for d in dead] == ["InvalidFrame"] * 4

    report = replay(f"{tmp_path}/dead", f"{tmp_path}/again", error_types=["InvalidFrame"])
    assert report.replayed == 4
    assert sorted(_lines(tmp_path / "again")) == sorted(b.encode() for b in bad)


def _drain(uri: str, want: int, **kwargs) -> list[bytes]:
    got: list[bytes] = []
    with open_subscriber(uri, from_beginning=True, **kwargs) as sub:
        for _ in range(30):
            got += [m.value for m in sub.receive(500, timeout=1.0)]
            if len(got) >= want:
                break
    return got


@pytest.mark.integration
def test_kafka_to_kafka(kafka_broker):
    dlq = kafka_broker.new_topic("replay-dlq", partitions=2)
    fixed = kafka_broker.new_topic("replay-fixed", partitions=1)
    letters = _letters()
    with open_publisher(f"kafka://{kafka_broker.bootstrap}/{dlq}") as pub:
        for letter in letters:
            pub.publish(letter)
        pub.publish(b"garbage")

    report = replay(
        f"kafka://{kafka_broker.bootstrap}/{dlq}",
        f"kafka://{kafka_broker.bootstrap}/{fixed}",
        error_types=["ValueError", "KeyError"],
        idle_timeout=2.0,
    )

    assert (report.read, report.replayed, report.skipped, report.unreadable) == (10, 6, 3, 1)
    got = _drain(f"kafka://{kafka_broker.bootstrap}/{fixed}", 6)
    want = [letter["payload"].encode() for letter in letters[:5]] + [BINARY]
    assert sorted(got) == sorted(want)


@pytest.mark.integration
def test_pubsub_acks_only_what_it_replayed(pubsub_emulator):
    project = pubsub_emulator.project
    dlq, fixed = unique_name("dlq"), unique_name("fixed")
    for topic in (dlq, fixed):
        pubsub_emulator.create_topic(topic)
    pubsub_emulator.create_subscription(dlq, f"{dlq}-sub", ack_deadline_seconds=10)
    pubsub_emulator.create_subscription(fixed, f"{fixed}-sub")
    letters = _letters()
    with open_publisher(f"pubsub://projects/{project}/topics/{dlq}") as pub:
        for letter in letters:
            pub.publish(letter)
    source = f"pubsub://projects/{project}/subscriptions/{dlq}-sub"
    sink = f"pubsub://projects/{project}/topics/{fixed}"

    first = replay(source, sink, error_types=["LateFrame"], idle_timeout=2.0)
    assert (first.replayed, first.skipped) == (3, 6)
    got = _drain(f"pubsub://projects/{project}/subscriptions/{fixed}-sub", 3)
    assert sorted(got) == sorted(f'{{"uid": "late{i}"}}'.encode() for i in range(3))

    # The skipped letters come back once their ack deadline (10 s) passes; the
    # replayed ones were acked and do not.
    second = replay(source, sink, idle_timeout=12.0)
    assert second.by_type == {"ValueError": 5, "KeyError": 1}

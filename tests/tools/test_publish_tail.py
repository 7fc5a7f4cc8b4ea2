"""``beamstream topics``, ``publish`` and ``tail`` through the CLI, on both brokers."""

from __future__ import annotations

import json

import pytest

from beamstream import cli
from tests.services.ports import unique_name

LINES = [
    json.dumps({"uid": f"u{i % 3}", "timestamp": 1_700_000_000_000 + i}, separators=(",", ":"))
    for i in range(20)
] + ["not json at all"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def jsonl(tmp_path):
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(LINES[:10]) + "\n\n" + "\n".join(LINES[10:]) + "\n")
    return str(path)


@pytest.mark.integration
def test_kafka_topics_publish_tail_round_trip(kafka_broker, kafka_client, jsonl, capsys) -> None:
    topic = unique_name("tools")
    uri = f"kafka://{kafka_broker.bootstrap}/{topic}?client={kafka_client}"
    code, out, _ = _run(capsys, "topics", "create", uri, "--partitions", "2")
    assert code == 0 and "2 partition(s)" in out
    code, out, _ = _run(capsys, "topics", "list", f"kafka://{kafka_broker.bootstrap}")
    assert f"{topic}\t2 partition(s)" in out.splitlines()

    code, out, err = _run(capsys, "publish", jsonl, "--sink", uri, "--key-field", "uid")
    assert code == 0, err
    assert out.strip().startswith(f"published {len(LINES)} messages")

    code, out, err = _run(
        capsys, "tail", uri, "--from-beginning", "--max", str(len(LINES)), "--compact", "--meta"
    )
    assert code == 0, err
    printed = out.splitlines()
    payloads = [line for line in printed if not line.startswith("# ")]
    assert sorted(payloads) == sorted(LINES)
    metas = [line for line in printed if line.startswith("# ")]
    assert sum("key=u0" in m for m in metas) == 7  # the non-JSON line has no key

    code, out, _ = _run(capsys, "topics", "delete", uri)
    assert code == 0
    code, out, _ = _run(capsys, "topics", "list", f"kafka://{kafka_broker.bootstrap}")
    assert topic not in out


@pytest.mark.integration
def test_pubsub_topics_publish_tail_round_trip(pubsub_emulator, jsonl, capsys) -> None:
    project = pubsub_emulator.project
    topic, sub = unique_name("tools"), unique_name("tools-sub")
    topic_uri = f"pubsub://projects/{project}/topics/{topic}"
    sub_uri = f"pubsub://projects/{project}/subscriptions/{sub}"
    assert _run(capsys, "topics", "create", topic_uri)[0] == 0
    assert _run(capsys, "topics", "create", sub_uri, "--topic", topic)[0] == 0
    code, _, err = _run(capsys, "topics", "create", topic_uri)
    assert code == 2 and err.count("\n") == 1 and "already exists" in err
    code, out, _ = _run(capsys, "topics", "list", f"pubsub://projects/{project}")
    assert f"topic\tprojects/{project}/topics/{topic}" in out.splitlines()

    code, out, err = _run(
        capsys, "publish", jsonl, "--sink", topic_uri, "--timestamp-attribute", "ts"
    )
    assert code == 0, err
    assert out.strip().startswith(f"published {len(LINES)} messages")

    code, out, err = _run(capsys, "tail", sub_uri, "--max", str(len(LINES)), "--meta")
    assert code == 0, err
    assert out.count('{\n  "uid": ') == 20  # pretty-printed JSON
    assert "not json at all" in out.splitlines()
    assert sum(f"ts={1_700_000_000_000 + i}" in out for i in range(20)) == 20

    # Acked by tail: nothing is left on the subscription.
    code, out, _ = _run(capsys, "tail", sub_uri, "--idle-timeout", "1")
    assert code == 0 and out == ""

    assert _run(capsys, "topics", "delete", sub_uri)[0] == 0
    assert _run(capsys, "topics", "delete", topic_uri)[0] == 0
    code, _, err = _run(capsys, "tail", sub_uri, "--max", "1")
    assert code == 2 and err.strip().endswith("does not exist") and err.count("\n") == 1


BAD_URIS = {
    "missing project": "pubsub://topics/frames",
    "empty project": "pubsub://projects//subscriptions/frames-sub",
    "malformed subscription path": "pubsub://projects/beamstream-test/subscription/frames-sub",
    "invalid project id": "pubsub://projects/Bad_Project/topics/frames",
}


@pytest.mark.parametrize("reason", sorted(BAD_URIS))
@pytest.mark.parametrize(
    "argv",
    [
        ("tail", "{uri}"),
        ("publish", "frames.jsonl", "--sink", "{uri}"),
        ("topics", "create", "{uri}"),
    ],
    ids=["tail", "publish", "topics"],
)
def test_bad_uris_give_one_clear_line(capsys, reason: str, argv) -> None:
    uri = BAD_URIS[reason]
    code, out, err = _run(capsys, *(a.format(uri=uri) for a in argv))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    expected = (
        "invalid project id"
        if "project id" in reason or "empty" in reason
        else ("expected pubsub://projects/P/topics/T")
    )
    assert expected in err and uri in err

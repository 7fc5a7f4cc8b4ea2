"""The frames pipeline end to end: files in batch, Kafka bounded, and the CLI."""

from __future__ import annotations

import json

import pytest

from beamstream import cli
from beamstream.pipelines import frames
from beamstream.synthetic import frames as make_frames
from tests.support.frames_reference import reference
from tests.support.jsonl import final_by_window, read_shards


def _run_frames(source: str, out, *extra: str) -> tuple[dict, dict, list]:
    frames.run(
        [
            f"--source={source}",
            f"--per_second_sink={out}/sec",
            f"--per_minute_sink={out}/min",
            f"--dead_letter_sink={out}/dead",
            *extra,
        ]
    )
    return (
        final_by_window(read_shards(f"{out}/sec"), "frames"),
        final_by_window(read_shards(f"{out}/min"), "unique_users"),
        read_shards(f"{out}/dead"),
    )


def test_batch_file_run_matches_independent_computation(tmp_path):
    lines = list(
        make_frames(
            20_000,
            per_second=200,
            users=300,
            disorder_s=3.0,
            invalid_every=211,
            gaps=((30, 34),),
            mixed_formats=True,
        )
    )
    source = tmp_path / "frames.jsonl"
    source.write_text("\n".join(lines) + "\n")
    seconds, minutes, dead = _run_frames(str(source), tmp_path)
    want_seconds, want_minutes, invalid = reference(lines)
    assert seconds == want_seconds
    assert minutes == want_minutes
    assert len(dead) == invalid > 0
    assert all(json.loads(json.dumps(d))["payload"] is not None for d in dead)


def test_bundled_sample_with_gaps_filled(tmp_path):
    from beamstream.demo import sample_path

    with open(sample_path(), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    seconds, minutes, dead = _run_frames(sample_path(), tmp_path, "--fill_gaps")
    want_seconds, want_minutes, invalid = reference(lines)
    nonzero = {k: v for k, v in seconds.items() if v}
    assert nonzero == want_seconds
    first, last = min(want_seconds), max(want_seconds)
    assert sorted(seconds) == list(range(first, last + 1))
    assert minutes == want_minutes and len(dead) == invalid


@pytest.mark.integration
def test_bounded_kafka_run_matches_independent_computation(kafka_broker, tmp_path):
    from kafka import KafkaProducer

    topic = kafka_broker.new_topic("frames", partitions=4)
    lines = list(make_frames(30_000, per_second=500, users=200, disorder_s=2.0, invalid_every=503))
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=10)
    for i, line in enumerate(lines):
        producer.send(topic, line.encode(), partition=i % 4)
    producer.flush()
    producer.close()
    seconds, minutes, dead = _run_frames(
        f"kafka://{kafka_broker.bootstrap}/{topic}?stop=end", tmp_path
    )
    want_seconds, want_minutes, invalid = reference(lines)
    assert seconds == want_seconds
    assert minutes == want_minutes
    assert len(dead) == invalid


def test_cli_help_lists_pipelines_and_options(capsys):
    assert cli.main(["--help"]) == 0
    assert "frames" in capsys.readouterr().out
    assert cli.main(["frames", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--per_second_sink" in out and "--allowed_lateness" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--source=bogus://x", "--per_second_sink=o", "--per_minute_sink=o"],
            "unknown URI scheme",
        ),
        (["--source=kafka://nohost/t", "--per_second_sink=o", "--per_minute_sink=o"], "bad server"),
        (
            ["--source=f.jsonl", "--per_second_sink=o"],
            "missing required option(s): --per_minute_sink",
        ),
        (
            [
                "--source=f.jsonl",
                "--per_second_sink=o",
                "--per_minute_sink=o",
                "--per_second_snk=x",
            ],
            "unknown option(s): --per_second_snk",
        ),
    ],
)
def test_cli_bad_options_exit_non_zero_with_one_clear_line(argv, message, capsys):
    assert cli.main(["frames", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err

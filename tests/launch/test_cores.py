"""A large batch file run on the DirectRunner gets one worker process per core, and only then."""

from __future__ import annotations

import json
import os

import apache_beam as beam
import pytest
import sqlalchemy as sa
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.testing.test_stream import TestStream

from beamstream.io.files import ReadJsonLines
from beamstream.io.sql.write import WriteRows
from beamstream.launch import cores
from beamstream.launch.run import run_pipeline
from beamstream.pipelines import frames
from beamstream.synthetic import frames as make_frames
from tests.support.frames_reference import reference
from tests.support.jsonl import final_by_window, read_shards


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(cores, "available_cores", lambda: 2)


@pytest.fixture
def any_input_is_large(monkeypatch):
    monkeypatch.setattr(cores, "MIN_INPUT_BYTES", 1)


def _frame_files(tmp_path, files: int = 2, per_file: int = 3000) -> tuple[str, list[str]]:
    """``files`` JSON Lines files of frames; each becomes its own read range."""
    every: list[str] = []
    for i in range(files):
        lines = list(make_frames(per_file, per_second=100, users=50, seed=i))
        (tmp_path / f"frames-{i}.jsonl").write_text("\n".join(lines) + "\n")
        every += lines
    return str(tmp_path / "frames-*.jsonl"), every


def _pipeline(pattern: str, *flags: str, extra=None) -> beam.Pipeline:
    pipeline = beam.Pipeline(options=PipelineOptions(list(flags)))
    read = pipeline | "Read" >> ReadJsonLines(pattern, batched=True)
    if extra is not None:
        extra(pipeline, read)
    return pipeline


def test_a_large_file_input_gets_a_worker_process_per_core(tmp_path, two_cores, any_input_is_large):
    pattern, _ = _frame_files(tmp_path)
    pipeline = _pipeline(pattern)
    assert cores.use_cores(pipeline) == 2
    direct = pipeline._options.view_as(DirectOptions)
    assert (direct.direct_running_mode, direct.direct_num_workers) == ("multi_processing", 2)


def test_a_small_input_stays_in_this_process(tmp_path, two_cores):
    pattern, _ = _frame_files(tmp_path)
    assert os.path.getsize(tmp_path / "frames-0.jsonl") * 2 < cores.MIN_INPUT_BYTES
    pipeline = _pipeline(pattern)
    assert cores.use_cores(pipeline) == 1
    assert pipeline._options.view_as(DirectOptions).direct_running_mode == "in_memory"


@pytest.mark.parametrize(
    "flags",
    [
        ("--direct_num_workers=1",),
        ("--direct_running_mode", "in_memory"),
        ("--streaming",),
        ("--runner=PrismRunner",),
    ],
)
def test_the_users_choice_streaming_and_other_runners_are_left_alone(
    tmp_path, two_cores, any_input_is_large, flags
):
    pattern, _ = _frame_files(tmp_path)
    assert cores.worker_processes(_pipeline(pattern, *flags)) == 1


def test_one_core_is_one_process(tmp_path, monkeypatch, any_input_is_large):
    monkeypatch.setattr(cores, "available_cores", lambda: 1)
    pattern, _ = _frame_files(tmp_path)
    assert cores.worker_processes(_pipeline(pattern)) == 1


def _test_stream(pipeline, _read):
    _ = pipeline | "Live" >> TestStream().add_elements([b"x"])


def _sql_sink(_pipeline, read):
    table = sa.Table("t", sa.MetaData(), sa.Column("k", sa.String, primary_key=True))
    _ = read | WriteRows("sqlite:///unused.db", table, ["k"])


@pytest.mark.parametrize("extra", [_test_stream, _sql_sink], ids=["TestStream", "WriteRows"])
def test_single_process_transforms_keep_one_process(tmp_path, two_cores, any_input_is_large, extra):
    pattern, _ = _frame_files(tmp_path)
    assert cores.worker_processes(_pipeline(pattern, extra=extra)) == 1


def test_worker_processes_do_the_reading(tmp_path, two_cores, any_input_is_large):
    """Both file ranges are read, in two processes other than this one."""
    pattern, lines = _frame_files(tmp_path)
    out = tmp_path / "pids"

    def build(pipeline, _options):
        _ = (
            pipeline
            | ReadJsonLines(pattern, batched=True)
            | beam.Map(lambda batch: json.dumps([os.getpid(), batch.size]))
            | beam.io.WriteToText(str(out))
        )

    run_pipeline(build, PipelineOptions([]))
    written = (path.read_text().splitlines() for path in tmp_path.glob("pids*"))
    rows = [json.loads(line) for lines_of_shard in written for line in lines_of_shard]
    pids = {pid for pid, _ in rows}
    assert sum(size for _, size in rows) == len(lines)
    assert len(pids) == 2 and os.getpid() not in pids


def test_frames_on_worker_processes_match_the_reference(tmp_path, two_cores, any_input_is_large):
    pattern, lines = _frame_files(tmp_path, files=3)
    out = tmp_path / "out"
    frames.run(
        [
            f"--source={pattern}",
            f"--per_second_sink={out}/sec",
            f"--per_minute_sink={out}/min",
            f"--dead_letter_sink={out}/dead",
        ]
    )
    want_seconds, want_minutes, _ = reference(lines)
    assert final_by_window(read_shards(f"{out}/sec"), "frames") == want_seconds
    assert final_by_window(read_shards(f"{out}/min"), "unique_users") == want_minutes

"""FrameMetrics semantics under disorder, lateness and gaps, through TestStream.

Each scenario is a script of source steps: frames read (annotated with the
watermark announced before them, as every beamstream source does) and
watermark advances. It runs twice, parametrized: with each step's frames as one
``MessageBatch`` (the batched path) and as single ``Message`` elements (the
record-at-a-time path). Both must give identical results.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from beamstream.io.elements import NO_WATERMARK, Message, MessageBatch
from beamstream.transforms.frame_metrics import FrameMetrics

T0 = 1_700_000_040  # a minute boundary: 1_700_000_040 % 60 == 0
assert T0 % 60 == 0


def _frame(t, uid="u1") -> bytes:
    return json.dumps({"timestamp": t, "uid": uid}).encode()


def _stream(script, batched: bool) -> TestStream:
    """script: ("frames", [payload bytes...]) | ("watermark", epoch seconds)."""
    stream = TestStream()
    announced = NO_WATERMARK
    offset = 0
    for kind, value in script:
        if kind == "watermark":
            value = round(value, 3)  # TestStream scripts carry millisecond watermarks
            announced = int(round(value * 1000)) * 1000
            stream = stream.advance_watermark_to(value)
            continue
        messages = []
        for payload in value:
            messages.append(
                Message(value=payload, source="t", offset=offset, watermark_us=announced)
            )
            offset += 1
        # element timestamp: no later than the earliest frame, never behind 0
        ts = max(announced, 0) / 1e6
        if batched:
            stream = stream.add_elements(
                [beam.window.TimestampedValue(MessageBatch.of(messages, announced), ts)]
            )
        else:
            stream = stream.add_elements([beam.window.TimestampedValue(m, ts) for m in messages])
    return stream.advance_watermark_to_infinity()


def _run(script, batched, **kwargs):
    """Runs FrameMetrics; returns per_second, per_minute and dead letters as lists."""
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    run_id = f"{len(_SINK)}"
    with TestPipeline(options=options) as p:
        out = p | _stream(script, batched) | FrameMetrics(**kwargs)
        for name in ("per_second", "per_minute", "dead_letters"):
            _SINK[f"{run_id}:{name}"] = []
            out[name] | f"Collect{name}" >> beam.Map(_record, f"{run_id}:{name}")
    return {
        name: _SINK[f"{run_id}:{name}"] for name in ("per_second", "per_minute", "dead_letters")
    }


# Outputs collected in this process (the DirectRunner runs in-process); a
# module-level function is pickled by reference, so it appends to this dict.
_SINK: dict[str, list] = {}


def _record(element, key):
    _SINK[key].append(element)


def _panes(rows, field):
    return sorted((r["window_start"], r[field], r["pane"]) for r in rows)


SHAPES = pytest.mark.parametrize("batched", [True, False], ids=["batched", "records"])


@SHAPES
def test_out_of_order_frames_in_one_window_are_all_counted(batched):
    script = [
        ("frames", [_frame(T0 + 0.9), _frame(T0 + 0.2), _frame(T0 + 0.5)]),
        ("watermark", T0 + 5),
    ]
    r = _run(script, batched)
    assert _panes(r["per_second"], "frames") == [(T0, 3, "ON_TIME")]
    assert r["dead_letters"] == []


@SHAPES
def test_late_frame_within_lateness_gives_late_pane_with_updated_total(batched):
    script = [
        ("frames", [_frame(T0 + 1.5), _frame(T0 + 1.6)]),
        ("watermark", T0 + 3),
        ("frames", [_frame(T0 + 1.7)]),  # window [T0+1, T0+2) already fired
        ("watermark", T0 + 10),
    ]
    r = _run(script, batched, allowed_lateness_s=30)
    assert _panes(r["per_second"], "frames") == [(T0 + 1, 2, "ON_TIME"), (T0 + 1, 3, "LATE")]
    assert r["dead_letters"] == []


@SHAPES
def test_frame_beyond_lateness_goes_to_dead_letters_once(batched):
    script = [
        ("frames", [_frame(T0 + 1.5, "a"), _frame(T0 + 1.6, "b")]),
        ("watermark", T0 + 20),
        ("frames", [_frame(T0 + 1.2, "c")]),  # second closed at T0+2+5 < T0+20
        ("watermark", T0 + 200),
    ]
    r = _run(script, batched, allowed_lateness_s=5)
    assert _panes(r["per_second"], "frames") == [(T0 + 1, 2, "ON_TIME")]
    assert len(r["dead_letters"]) == 1
    letter = r["dead_letters"][0]
    assert letter["error_type"] == "LateFrame"
    assert "too late" in letter["error"] and json.loads(letter["payload"])["uid"] == "c"
    # its minute [T0, T0+60) was still open (closes at T0+60+5): c still counts there
    assert _panes(r["per_minute"], "unique_users") == [(T0, 3, "ON_TIME")]


@SHAPES
@pytest.mark.parametrize("fill", [False, True], ids=["gaps", "filled"])
def test_gaps_of_several_seconds(batched, fill):
    script = [
        ("frames", [_frame(T0 + 0.1), _frame(T0 + 1.1), _frame(T0 + 5.1)]),
        ("watermark", T0 + 10),
    ]
    r = _run(script, batched, fill_gaps=fill)
    expected = [(T0, 1, "ON_TIME"), (T0 + 1, 1, "ON_TIME"), (T0 + 5, 1, "ON_TIME")]
    if fill:
        expected += [(T0 + s, 0, "ON_TIME") for s in (2, 3, 4)]
    assert _panes(r["per_second"], "frames") == sorted(expected)


@SHAPES
def test_iso_epoch_seconds_and_epoch_millis_in_one_stream(batched):
    script = [
        (
            "frames",
            [
                _frame(T0 + 0.25),
                _frame((T0 + 0.5) * 1000),
                json.dumps({"ts": "2023-11-14T22:14:00.750Z", "uid": "x"}).encode(),
            ],
        ),
        ("watermark", T0 + 5),
    ]
    assert T0 == 1_700_000_040  # 2023-11-14T22:14:00Z
    r = _run(script, batched)
    assert _panes(r["per_second"], "frames") == [(T0, 3, "ON_TIME")]


@SHAPES
def test_minute_boundaries_and_users_counted_once_per_minute(batched):
    frames = [_frame(T0 - 0.1, "a"), _frame(T0 + 0.1, "a")]
    frames += [_frame(T0 + i, "b") for i in range(1, 50, 7)] + [_frame(T0 + 59.9, "c")]
    script = [("frames", frames), ("watermark", T0 + 200)]
    r = _run(script, batched, output_time_format="iso")
    minutes = _panes(r["per_minute"], "unique_users")
    assert minutes == [
        ("2023-11-14T22:13:00Z", 1, "ON_TIME"),
        ("2023-11-14T22:14:00Z", 3, "ON_TIME"),
    ]


@SHAPES
def test_invalid_frames_are_dead_letters_with_reason_and_payload(batched):
    bad = [
        b"not json",
        b"[1,2]",
        b'{"timestamp": 5}',
        b'{"uid": "a"}',
        b'{"timestamp": "soon", "uid": "a"}',
        b'{"timestamp": 1, "uid": ""}',
        b"\xff\xfe",
    ]
    script = [("frames", bad + [_frame(T0)]), ("watermark", T0 + 5)]
    r = _run(script, batched)
    assert _panes(r["per_second"], "frames") == [(T0, 1, "ON_TIME")]
    letters = r["dead_letters"]
    assert len(letters) == len(bad)
    assert {letter["step"] for letter in letters} == {"frame_metrics"}
    assert all(letter["error"] for letter in letters)
    assert sorted(letter["source"] for letter in letters) == sorted(f"t[0]@{i}" for i in range(7))


def test_batched_and_record_paths_agree_on_a_holdout_stream():
    """Disorder, gaps, invalid, late and too-late frames: identical final results."""
    import random

    rng = random.Random(3)
    script = []
    t = T0
    for step in range(40):
        frames = []
        for _ in range(rng.randrange(5, 40)):
            frames.append(_frame(t + rng.random() * 2 - 1.5, f"u{rng.randrange(30)}"))
            t += 0.05
        if step % 7 == 3:
            frames.append(b"{bad")
        if step % 9 == 4:
            frames.append(_frame(t - 9))  # late, within 5 s lateness for its minute
        if step % 11 == 5:
            frames.append(_frame(t - 40))  # too late
        if step == 20:
            t += 6  # a gap
        script.append(("frames", frames))
        script.append(("watermark", t - 2))
    results = [
        _run(script, batched, allowed_lateness_s=5, fill_gaps=True) for batched in (True, False)
    ]

    def final(rows, field):
        order = {"ON_TIME": 0, "LATE": 1}
        best = {}
        for row in sorted(rows, key=lambda r: (order[r["pane"]], r[field])):
            best[row["window_start"]] = row[field]
        return best

    def letters(rows):
        return sorted((r["source"], r["error_type"]) for r in rows)

    batched, records = results
    assert final(batched["per_second"], "frames") == final(records["per_second"], "frames")
    assert final(batched["per_minute"], "unique_users") == final(
        records["per_minute"], "unique_users"
    )
    assert letters(batched["dead_letters"]) == letters(records["dead_letters"])
    assert any(r["error_type"] == "LateFrame" for r in batched["dead_letters"])
    assert any(r["frames"] == 0 for r in batched["per_second"])


def test_approximate_unique_users_within_stated_error():
    from beamstream.transforms import hyperloglog

    users = [f"user-{i}" for i in range(5000)]
    script = [
        ("frames", [_frame(T0 + i / 1000, u) for i, u in enumerate(users)]),
        ("watermark", T0 + 100),
    ]
    r = _run(script, True, unique_users="approximate")
    (minute,) = r["per_minute"]
    assert abs(minute["unique_users"] - 5000) <= 5000 * 3 * hyperloglog.STANDARD_ERROR

"""Template files against the code: metadata drift, parameters the pipelines accept,
the launcher's argument rewriting, and the Dockerfile's single Beam pin."""

from __future__ import annotations

import re
from pathlib import Path

import apache_beam
import pytest

from beamstream import cli
from beamstream.deploy import launch
from beamstream.deploy.catalog import pipeline_modules
from beamstream.deploy.metadata import (
    FLAG,
    LIST,
    SINK_REGEX,
    SOURCE_REGEX,
    drift,
    generate,
    template_parameters,
)
from beamstream.io.uris import parse_sink, parse_source
from beamstream.launch.run import parse_options

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
DRY_RUN = [
    "--runner=DataflowRunner",
    "--dry_run=True",
    "--project=beamstream-test",
    "--region=us-central1",
    "--temp_location=gs://beamstream-test/tmp",
]


def test_checked_in_metadata_matches_the_pipelines_options():
    assert drift(TEMPLATES) == [], "run: beamstream templates generate"


def test_drift_is_detected(tmp_path, capsys):
    generate(tmp_path)
    assert drift(tmp_path) == []
    frames = tmp_path / "frames" / "metadata.json"
    frames.write_text(frames.read_text().replace('"isOptional": false', '"isOptional": true', 1))
    (tmp_path / "metrics" / "metadata.json").unlink()
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "metadata.json").write_text("{}")
    problems = drift(tmp_path)
    assert len(problems) == 3
    assert cli.main(["templates", "check", "--out", str(tmp_path)]) == 1
    assert "beamstream templates generate" in capsys.readouterr().err
    assert cli.main(["templates", "generate", "--out", str(tmp_path)]) == 0
    assert drift(tmp_path) == [f"{tmp_path / 'gone' / 'metadata.json'}: no pipeline named 'gone'"]
    (tmp_path / "gone" / "metadata.json").unlink()
    assert cli.main(["templates", "check", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("name", sorted(pipeline_modules()))
def test_parameters_cover_every_option_and_required_ones_are_marked(name):
    module = pipeline_modules()[name]
    parameters = {p.name: p for p in template_parameters(module)}
    assert {n for n, p in parameters.items() if not p.optional} == set(module.REQUIRED)
    assert all(p.help_text and p.label for p in parameters.values())
    # Every parameter is an option the pipeline's strict parser knows.
    known = parse_options([])  # builds Beam's full parser over every imported options class
    values = known.get_all_options(drop_default=False)
    assert set(parameters) <= set(values)


@pytest.mark.parametrize(
    "uri",
    [
        "kafka://127.0.0.1:9092/frames",
        "kafka://a:9092,b:9092/t1?group=g&start=earliest&stop=end",
        "pubsub://projects/beamstream-test/subscriptions/frames-sub",
        "/data/in/*.jsonl",
        "file:///data/in.jsonl",
    ],
)
def test_source_regex_accepts_what_the_parser_accepts(uri):
    parse_source(uri)
    assert re.match(SOURCE_REGEX, uri)


@pytest.mark.parametrize(
    "uri",
    [
        "kafka://127.0.0.1:9092/out",
        "pubsub://projects/beamstream-test/topics/out",
        "sqlite:///tmp/x.db",
        "postgresql://user@db:5432/metrics",
        "mysql://root@db/test",
        "/data/out/prefix",
    ],
)
def test_sink_regex_accepts_what_the_parser_accepts(uri):
    parse_sink(uri)
    assert re.match(SINK_REGEX, uri)


@pytest.mark.parametrize("uri", ["http://x/y", "pubsub://projects/p/topics/t", "kafka://"])
def test_source_regex_rejects_what_cannot_be_read(uri):
    assert not re.match(SOURCE_REGEX, uri)


def test_launcher_rewrites_flags_and_lists():
    frames = pipeline_modules()["frames"]
    kinds = {p.name: p.kind for p in template_parameters(frames)}
    assert kinds["fill_gaps"] == FLAG and kinds["kafka_config"] == LIST
    argv = [
        "--source=/x.jsonl",
        "--fill_gaps=true",
        "--kafka_config=security_protocol=SASL_SSL; sasl_plain_password=env:KAFKA_PASSWORD",
        "--project=p",
    ]
    assert launch.template_argv(frames, argv) == [
        "--source=/x.jsonl",
        "--fill_gaps",
        "--kafka_config=security_protocol=SASL_SSL",
        "--kafka_config=sasl_plain_password=env:KAFKA_PASSWORD",
        "--project=p",
    ]
    assert launch.template_argv(frames, ["--fill_gaps=false"]) == []


def test_launcher_translates_the_pipeline_named_by_the_image(tmp_path, capsys):
    argv = [
        *DRY_RUN,
        "--source=kafka://127.0.0.1:9092/frames",
        f"--per_second_sink={tmp_path}/ps",
        f"--per_minute_sink={tmp_path}/pm",
        "--fill_gaps=true",
        "--kafka_config=client_id=beamstream;request_timeout_ms=5000",
    ]
    assert launch.main(argv, environ={launch.PIPELINE_ENV: "frames"}) == 0
    assert launch.main(["--fill_gaps=maybe"], environ={launch.PIPELINE_ENV: "frames"}) == 2
    assert "expected true or false" in capsys.readouterr().err
    assert launch.main(argv, environ={launch.PIPELINE_ENV: "nope"}) == 2
    assert "no pipeline named 'nope'" in capsys.readouterr().err
    assert launch.main(argv, environ={}) == 2


def test_dockerfile_pins_beam_once_and_launches_the_thin_launcher():
    text = (TEMPLATES / "Dockerfile").read_text()
    pins = re.findall(r"\d+\.\d+\.\d+", text)
    assert pins == [apache_beam.__version__], "Beam pinned once, to the version tested here"
    assert re.search(rf"^ARG BEAM_VERSION={re.escape(apache_beam.__version__)}$", text, re.M)
    assert "pip check" in text
    py_file = re.search(r"^ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/(\S+)$", text, re.M)
    assert py_file and (TEMPLATES.parent / py_file.group(1)).is_file()
    assert f"COPY {py_file.group(1)} " in text

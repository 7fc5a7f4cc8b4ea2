"""The default DirectRunner on a machine where Beam finds Prism runs beamstream right.

Beam's DirectRunner runs every pipeline Prism supports on Prism once it finds
the binary (``~/.apache_beam/cache/prism/bin``, where it puts its download).
Here a subprocess gets a HOME holding that zip, as a user's machine with
internet would; ``frames``, ``metrics`` and ``store`` then run on Prism
without being asked, and must give the results (and commits) they give on
the FnApiRunner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_portable_runner import CASES, run_on
from tests.runners.test_prism_kafka import (
    FNAPI,
    answers,
    bounded_uri,
    committed,
    kafka_input,
    outputs_of,
)

pytestmark = pytest.mark.integration
ON_PRISM = "the DirectRunner runs this pipeline on Prism"


def run_cli(name: str, source: str, extra: list[str], out: Path, home: Path) -> str:
    """``beamstream NAME`` on the default runner with this HOME; returns its log."""
    _, outputs = CASES[name]
    out.mkdir()
    args = [f"--source={source}", *(f"--{o}={out / o}" for o in (*outputs, "dead_letter_sink"))]
    if name == "store":
        args.append(f"--sink=sqlite:///{out / 'samples.db'}")
    process = subprocess.run(
        [sys.executable, "-m", "beamstream.cli", name, *args, *extra],
        env={**os.environ, "HOME": str(home), "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return process.stderr


@pytest.mark.parametrize("name", ["frames", "metrics", "store"])
def test_default_runner_on_prism_gives_the_same_results_and_commits(
    name, kafka_broker, models, prism_home, tmp_path
):
    topic, counts, extra = kafka_input(kafka_broker, name, models, tmp_path)
    bs = kafka_broker.bootstrap

    def uri(group: str) -> str:
        return bounded_uri(bs, topic, group)

    want = run_on(FNAPI, name, uri("fnapi"), extra, tmp_path / "fnapi")
    log = run_cli(name, uri("prism"), extra, tmp_path / "prism", prism_home)

    assert ON_PRISM in log, log[-3000:]
    assert answers(outputs_of(name, tmp_path / "prism")) == answers(want)
    assert committed(bs, topic, "prism") == counts


def test_default_runner_on_prism_with_a_file_source(prism_home, tmp_path):
    write_input, _ = CASES["frames"]
    source = tmp_path / "input.jsonl"
    extra = write_input(source, {})
    want = run_on(FNAPI, "frames", str(source), extra, tmp_path / "fnapi")
    log = run_cli("frames", str(source), extra, tmp_path / "prism", prism_home)
    assert ON_PRISM in log, log[-3000:]
    assert answers(outputs_of("frames", tmp_path / "prism")) == answers(want)

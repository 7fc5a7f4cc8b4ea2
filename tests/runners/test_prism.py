"""Every pipeline on Beam's Prism runner gives the DirectRunner's results.

Prism is Beam's local portable runner (a Go binary); ``LOOPBACK`` runs the
SDK harness in this process. Each Prism run pays a few seconds of start-up,
so the cases here are small.
"""

from __future__ import annotations

import pytest

from tests.deploy.test_portable_runner import CASES, run_on
from tests.runners.test_prism_kafka import FNAPI, answers


@pytest.mark.parametrize("name", sorted(CASES))
def test_file_batch_on_prism_matches_direct_runner(name, models, prism_args, tmp_path):
    write_input, _ = CASES[name]
    source = tmp_path / "input.jsonl"
    extra = write_input(source, models)

    direct = run_on(FNAPI, name, source, extra, tmp_path / "direct")
    prism = run_on(prism_args, name, source, extra, tmp_path / "prism")

    assert all(direct.values()), "every output has records"
    assert answers(prism) == answers(direct)

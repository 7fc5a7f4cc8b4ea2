"""Fixtures for runner tests: the Prism binary, and a HOME where Beam finds its release zip."""

from __future__ import annotations

import os
import platform
import stat
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import anomaly_model_dir, digits_model_dir  # noqa: F401 - fixtures
from tests.services.require import service_unavailable

PRISM_BIN_ENV = "BEAMSTREAM_PRISM_BIN"


def _beam_version() -> str:
    from apache_beam.version import __version__

    return __version__


def default_prism_path() -> Path:
    """Where ``make engines`` builds Prism for the installed Beam version."""
    from tests.services.apache_kafka import engines_dir

    return engines_dir() / "prism" / f"v{_beam_version()}" / "prism"


@pytest.fixture(scope="session")
def prism_bin() -> Path:
    """Path of an executable Prism matching apache-beam (env BEAMSTREAM_PRISM_BIN overrides)."""
    path = Path(os.environ.get(PRISM_BIN_ENV) or default_prism_path())
    if not path.is_file() or not os.access(path, os.X_OK):
        service_unavailable(
            f"Prism binary not found at {path} (run `make engines`, or set {PRISM_BIN_ENV})"
        )
    return path


@pytest.fixture(scope="session")
def prism_home(prism_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose ~/.apache_beam cache holds the Prism release zip Beam would download.

    Processes started with this HOME behave like a user's machine with
    internet: the default DirectRunner may run a pipeline on Prism. Never the
    real HOME, which would switch every other DirectRunner run to Prism.
    """
    from apache_beam.runners.portability.prism_runner import PrismJobServer

    version = "v" + _beam_version()
    url = PrismJobServer._construct_download_url(  # noqa: SLF001 - Beam's own naming
        version, version, platform.system(), platform.machine()
    )
    name = os.path.basename(url)  # apache_beam-v2.77.0-prism-linux-amd64.zip
    home = tmp_path_factory.mktemp("prism-home")
    cache = home / ".apache_beam/cache/prism/bin"
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / name, "w", zipfile.ZIP_STORED) as archive:
        info = zipfile.ZipInfo(os.path.splitext(name)[0])
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        with open(prism_bin, "rb") as src, archive.open(info, "w") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    return home


@pytest.fixture(scope="session")
def prism_args(prism_bin: Path) -> list[str]:
    """Options that run a pipeline on this Prism."""
    return ["--runner=PrismRunner", f"--prism_location={prism_bin}"]


@pytest.fixture(scope="session")
def models(digits_model_dir, anomaly_model_dir) -> dict[str, Path]:  # noqa: F811
    return {"digits": digits_model_dir, "anomaly": anomaly_model_dir}

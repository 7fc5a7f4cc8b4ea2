"""Models trained once per session for the model and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamstream.models.artifacts import ModelMetadata
from tests.models.helpers import normal_aggregates


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelMetadata]:
    from beamstream.models.train import train_digits

    out = tmp_path_factory.mktemp("digits-model")
    return out, train_digits(str(out), version="test-1")


@pytest.fixture(scope="session")
def anomaly_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelMetadata]:
    from beamstream.models.train import train_anomaly

    out = tmp_path_factory.mktemp("anomaly-model")
    return out, train_anomaly(normal_aggregates(3000, seed=1), str(out), version="test-1")

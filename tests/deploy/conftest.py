"""Small trained models for the deploy tests (infer and detect need one to build)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def digits_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from beamstream.models.train import train_digits

    out = tmp_path_factory.mktemp("deploy-digits-model")
    train_digits(str(out), version="deploy-1")
    return out


@pytest.fixture(scope="session")
def anomaly_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from beamstream.models.train import train_anomaly
    from tests.models.helpers import normal_aggregates

    out = tmp_path_factory.mktemp("deploy-anomaly-model")
    train_anomaly(normal_aggregates(600, seed=3), str(out), version="deploy-1")
    return out

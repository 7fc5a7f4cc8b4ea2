"""Training writes a good model with complete metadata; loading refuses anything else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from beamstream.models import digits
from beamstream.models.artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    ModelArtifactError,
    load_model,
    read_metadata,
)


def test_digits_accuracy_on_held_out_split(digits_model):
    directory, metadata = digits_model
    model, loaded = load_model(str(directory))
    X_test, y_test = digits.held_out()
    accuracy = float((model.predict(X_test) == y_test).mean())
    assert accuracy >= 0.95
    assert loaded.accuracy == pytest.approx(accuracy, abs=1e-4)
    assert len(X_test) >= 400  # a real held-out split, not a handful of rows


def test_metadata_is_complete(digits_model):
    directory, _ = digits_model
    data = json.loads((directory / METADATA_FILE).read_text())
    for key in (
        "name",
        "version",
        "input_shape",
        "classes",
        "accuracy",
        "sklearn_version",
        "sha256",
        "created",
        "kind",
    ):
        assert data[key] not in (None, "", []), key
    assert data["name"] == "digits" and data["version"] == "test-1"
    assert data["input_shape"] == [64] and data["classes"] == list(range(10))
    assert len(data["sha256"]) == 64
    import sklearn

    assert data["sklearn_version"] == sklearn.__version__


def test_anomaly_metadata(anomaly_model):
    directory, _ = anomaly_model
    metadata = read_metadata(str(directory))
    assert metadata.kind == "detector"
    assert metadata.features == ["count", "mean", "min", "max", "p50", "p90", "p99"]
    assert metadata.extra["training_records"] == 3000


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_model_file_is_refused(digits_model, tmp_path):
    directory = _copy(digits_model[0], tmp_path / "m")
    data = bytearray((directory / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (directory / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelArtifactError, match="sha256 .* does not match"):
        load_model(str(directory))


def test_swapped_model_file_is_refused(digits_model, anomaly_model, tmp_path):
    directory = _copy(digits_model[0], tmp_path / "m")
    shutil.copy(anomaly_model[0] / MODEL_FILE, directory / MODEL_FILE)
    with pytest.raises(ModelArtifactError, match="tampered or foreign"):
        load_model(str(directory))


def test_other_sklearn_version_is_refused(digits_model, tmp_path):
    directory = _copy(digits_model[0], tmp_path / "m")
    meta = json.loads((directory / METADATA_FILE).read_text())
    meta["sklearn_version"] = "0.24.2"
    (directory / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="scikit-learn 0.24.2"):
        load_model(str(directory))


def test_model_changed_since_build_is_refused(digits_model, tmp_path):
    from beamstream.models.train import train_digits

    directory = tmp_path / "m"
    built_for = train_digits(str(directory), version="a")
    train_digits(str(directory), version="b")
    with pytest.raises(ModelArtifactError, match="changed since the pipeline was built"):
        load_model(str(directory), expected=built_for)


def test_missing_or_incomplete_metadata(tmp_path):
    with pytest.raises(ModelArtifactError, match="no metadata.json"):
        read_metadata(str(tmp_path))
    (tmp_path / METADATA_FILE).write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelArtifactError, match="lacks version"):
        read_metadata(str(tmp_path))


def test_train_cli_writes_a_loadable_model(tmp_path, capsys):
    from beamstream.cli import main

    assert main(["train", "digits", "--out", str(tmp_path / "d"), "--version", "7"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    model, metadata = load_model(str(tmp_path / "d"))
    assert metadata.version == "7"
    assert model.predict(np.zeros((1, 64))).shape == (1,)

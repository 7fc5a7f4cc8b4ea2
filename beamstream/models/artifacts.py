"""Model artefacts: a model file plus the metadata that vouches for it.

A model directory holds ``model.joblib`` and ``metadata.json``::

    {"name", "version", "kind", "input_shape", "classes", "features", "accuracy",
     "sklearn_version", "sha256", "created", "file", ...}

Unpickling executes code, so :func:`load_model` only unpickles bytes whose
sha256 matches the metadata, and only under the scikit-learn version that
wrote them (pickles are not portable across scikit-learn versions). The
directory may be local or any Beam filesystem (``gs://...``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from beamstream.errors import UserError

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
KINDS = ("classifier", "detector")


class ModelArtifactError(UserError, ValueError):
    """A model directory that is missing, incomplete, tampered or incompatible."""


@dataclass(frozen=True)
class ModelMetadata:
    """What ``metadata.json`` records about one saved model."""

    name: str
    version: str
    kind: str  # "classifier" (label + probabilities) or "detector" (score + anomaly)
    input_shape: list[int]
    sha256: str
    sklearn_version: str
    created: str
    classes: list[Any] = field(default_factory=list)
    features: list[str] = field(default_factory=list)  # named inputs (detector)
    accuracy: float | None = None
    file: str = MODEL_FILE
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED = ("name", "version", "kind", "input_shape", "sha256", "sklearn_version", "created")

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> ModelMetadata:
        missing = [k for k in cls.REQUIRED if data.get(k) in (None, "")]
        if missing:
            raise ModelArtifactError(f"{where}: metadata lacks {', '.join(missing)}")
        if data["kind"] not in KINDS:
            raise ModelArtifactError(f"{where}: unknown model kind {data['kind']!r}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _join(directory: str, name: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(directory, name)


def _read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            return handle.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        # Beam wraps missing local files in BeamIOError (an IOError).
        raise FileNotFoundError(f"cannot read {path}: {exc}") from exc


def _write_bytes(path: str, data: bytes) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, compression_type="uncompressed") as handle:
        handle.write(data)


def sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def save_model(
    model: Any,
    directory: str,
    *,
    name: str,
    kind: str,
    input_shape: list[int],
    classes: list[Any] | None = None,
    features: list[str] | None = None,
    accuracy: float | None = None,
    version: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelMetadata:
    """Writes ``model.joblib`` and ``metadata.json`` (sha256 of the exact bytes written)."""
    import joblib

    if "://" not in directory:
        os.makedirs(directory, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    data = buffer.getvalue()
    now = dt.datetime.now(dt.timezone.utc)
    metadata = ModelMetadata(
        name=name,
        version=version or now.strftime("%Y%m%d%H%M%S"),
        kind=kind,
        input_shape=list(input_shape),
        classes=list(classes or []),
        features=list(features or []),
        accuracy=accuracy,
        sklearn_version=sklearn_version(),
        sha256=hashlib.sha256(data).hexdigest(),
        created=now.isoformat(timespec="seconds"),
        extra=dict(extra or {}),
    )
    _write_bytes(_join(directory, MODEL_FILE), data)
    _write_bytes(
        _join(directory, METADATA_FILE),
        (json.dumps(metadata.to_json(), indent=2) + "\n").encode("utf-8"),
    )
    return metadata


def read_metadata(directory: str) -> ModelMetadata:
    """The metadata of a model directory (cheap: no model bytes are read)."""
    path = _join(directory, METADATA_FILE)
    try:
        data = json.loads(_read_bytes(path))
    except FileNotFoundError:
        raise ModelArtifactError(
            f"{directory}: no {METADATA_FILE}; is this a model directory?"
        ) from None
    except ValueError as exc:
        raise ModelArtifactError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelArtifactError(f"{path}: expected a JSON object")
    return ModelMetadata.from_json(data, path)


def verified_bytes(
    directory: str, expected: ModelMetadata | None = None
) -> tuple[bytes, ModelMetadata]:
    """The model file's bytes, once they match the metadata; nothing is unpickled.

    ``expected``: metadata read earlier (at pipeline construction); the model
    on disk must still be that one, so a worker never serves a model other
    than the one the pipeline was built and validated for.
    """
    metadata = read_metadata(directory)
    if expected is not None and (metadata.sha256, metadata.version) != (
        expected.sha256,
        expected.version,
    ):
        raise ModelArtifactError(
            f"{directory}: model changed since the pipeline was built "
            f"(version {expected.version} -> {metadata.version})"
        )
    installed = sklearn_version()
    if metadata.sklearn_version != installed:
        raise ModelArtifactError(
            f"{directory}: model was saved with scikit-learn {metadata.sklearn_version}, "
            f"this environment has {installed}; retrain it or install that version"
        )
    path = _join(directory, metadata.file)
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise ModelArtifactError(f"{path}: model file missing") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != metadata.sha256:
        raise ModelArtifactError(
            f"{path}: sha256 {digest[:16]}... does not match the metadata "
            f"({metadata.sha256[:16]}...); refusing to load a tampered or foreign model file"
        )
    return data, metadata


def load_model(directory: str, expected: ModelMetadata | None = None) -> tuple[Any, ModelMetadata]:
    """Loads a model only if its bytes and scikit-learn version match the metadata."""
    import joblib

    data, metadata = verified_bytes(directory, expected)
    # Unpickle the bytes that were verified, not a second read of the file.
    return joblib.load(io.BytesIO(data)), metadata

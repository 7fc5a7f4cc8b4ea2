"""``beamstream train``: fit a model and write it with its metadata.

    beamstream train digits  --out DIR [--version V]
    beamstream train anomaly --source URI --out DIR [--contamination F] [--limit N] [--version V]

``digits`` trains on scikit-learn's bundled 8x8 digits (no download) and
reports held-out accuracy. ``anomaly`` fits an IsolationForest on metric
aggregates read from ``--source`` (JSON Lines files or a Kafka topic, read to
its end). Both write ``DIR/model.joblib`` and ``DIR/metadata.json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from beamstream.models import anomaly, digits
from beamstream.models.artifacts import ModelMetadata, save_model


def train_digits(out: str, version: str | None = None) -> ModelMetadata:
    model, accuracy = digits.train()
    return save_model(
        model,
        out,
        name=digits.NAME,
        kind="classifier",
        input_shape=digits.INPUT_SHAPE,
        classes=[int(c) for c in model.classes_],
        accuracy=round(accuracy, 4),
        version=version,
        extra={
            "image_shape": [8, 8],
            "estimator": "StandardScaler+LogisticRegression",
            "held_out": {"test_size": digits.TEST_SIZE, "random_state": digits.SEED},
        },
    )


def train_anomaly(
    records: Sequence[dict[str, Any]] | Any,
    out: str,
    contamination: float = anomaly.DEFAULT_CONTAMINATION,
    version: str | None = None,
) -> ModelMetadata:
    X, names, skipped = anomaly.feature_matrix(records)
    model = anomaly.train(X, names, contamination=contamination)
    flagged = float((model.predict(X, names) == -1).mean())
    return save_model(
        model,
        out,
        name=anomaly.NAME,
        kind="detector",
        input_shape=[len(anomaly.FEATURES)],
        features=list(anomaly.FEATURES),
        version=version,
        extra={
            "estimator": "arcsinh+per-metric robust z-score+IsolationForest",
            "metrics": sorted(model.stats_),
            "z_limit": round(model.z_limit_, 3),
            "contamination": contamination,
            "training_records": int(len(X)),
            "skipped_records": skipped,
            "training_flagged_share": round(flagged, 5),
        },
    )


def _contamination(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 0.5:
        raise argparse.ArgumentTypeError("must be in (0, 0.5]")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beamstream train",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="model", required=True)
    d = sub.add_parser("digits", help="8x8 digits classifier (scikit-learn's bundled data)")
    d.add_argument("--out", required=True, help="Model directory to write (local or gs://).")
    d.add_argument("--version", default=None, help="Model version (default: UTC timestamp).")
    a = sub.add_parser("anomaly", help="IsolationForest over metric aggregates")
    a.add_argument("--source", required=True, help="Aggregates: path/glob or kafka:// URI.")
    a.add_argument("--out", required=True, help="Model directory to write (local or gs://).")
    a.add_argument(
        "--contamination",
        type=_contamination,
        default=anomaly.DEFAULT_CONTAMINATION,
        help="Share of training records treated as outliers (sets the score-0 threshold).",
    )
    a.add_argument("--limit", type=int, default=None, help="Read at most N records.")
    a.add_argument("--version", default=None, help="Model version (default: UTC timestamp).")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if args.model == "digits":
        metadata = train_digits(args.out, args.version)
        print(f"digits: held-out accuracy {metadata.accuracy:.4f}")
    else:
        from beamstream.models.datasets import read_records

        records = list(read_records(args.source, limit=args.limit))
        metadata = train_anomaly(records, args.out, args.contamination, args.version)
        print(
            f"anomaly: trained on {metadata.extra['training_records']} aggregates "
            f"({metadata.extra['skipped_records']} skipped), "
            f"{metadata.extra['training_flagged_share']:.2%} of them flagged"
        )
    print(json.dumps({"out": args.out, **metadata.to_json()}, indent=2))
    return 0

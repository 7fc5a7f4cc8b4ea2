"""The dead-letter record: one format for everything a pipeline could not use.

``{"error", "error_type", "step", "payload", "source", "timestamp"}`` where
``payload`` is the original message text (or base64 of undecodable bytes, with
``"payload_encoding": "base64"``) so a fixed pipeline can replay it exactly.
"""

from __future__ import annotations

import base64
import time
from typing import Any

DEAD_LETTER_TAG = "dead_letter"


def dead_letter(
    error: str | BaseException,
    payload: bytes | str | None,
    step: str,
    source: str = "",
    error_type: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Builds a dead-letter record; ``error_type`` defaults to the exception's class."""
    if isinstance(error, BaseException):
        error_type = error_type or type(error).__name__
        error = str(error) or error_type
    record: dict[str, Any] = {
        "error": error,
        "error_type": error_type or "Error",
        "step": step,
        "source": source,
        "timestamp": round(time.time(), 3),
    }
    if isinstance(payload, bytes):
        try:
            record["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            record["payload"] = base64.b64encode(payload).decode("ascii")
            record["payload_encoding"] = "base64"
    else:
        record["payload"] = payload
    record.update(extra)
    return record


def original_payload(record: dict[str, Any]) -> bytes:
    """The bytes a dead letter was made from, for replay."""
    payload = record.get("payload")
    if payload is None:
        return b""
    if record.get("payload_encoding") == "base64":
        return base64.b64decode(payload)
    return str(payload).encode("utf-8")

"""Request bodies → events: validate everything before anything is published.

A request is all-or-nothing: ``parse_events`` either returns every event of
the body or raises ``BodyError`` with a reason per bad item, and publishing
starts only after it returned. Each event keeps the exact bytes the client
sent for it (an object's own text, not a re-encoding), so consumers see what
the producer wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_DECODER = json.JSONDecoder(parse_constant=lambda name: _reject_constant(name))
_WS = " \t\n\r"
MAX_REASONS = 100  # per-item reasons listed in one 400 answer


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True)
class Event:
    """One message to publish: the object's original UTF-8 text and its key."""

    value: bytes
    key: str | None = None


@dataclass
class BodyError(Exception):
    """The body cannot be accepted; ``items`` holds ``{"index", "reason"}`` entries."""

    reason: str
    items: list[dict[str, Any]] = field(default_factory=list)
    metric_reason: str = "invalid_json"

    def __str__(self) -> str:
        return self.reason

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.reason}
        if self.items:
            out["items"] = self.items[:MAX_REASONS]
            if len(self.items) > MAX_REASONS:
                out["more_items"] = len(self.items) - MAX_REASONS
        return out


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _key(obj: dict[str, Any], key_field: str | None) -> str | None:
    """The message key: a string field as it is, any other value as compact JSON."""
    if key_field is None or key_field not in obj:
        return None
    value = obj[key_field]
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    text.encode("utf-8")  # lone surrogates from \ud800 escapes cannot be a key: ValueError
    return text


def _item(text: str, index: int, key_field: str | None, errors: list[dict[str, Any]]):
    try:
        obj = _DECODER.decode(text)
    except ValueError as exc:
        errors.append({"index": index, "reason": f"not JSON: {exc}"})
        return None
    return _event(obj, text, index, key_field, errors)


def _event(obj: Any, text: str, index: int, key_field: str | None, errors: list) -> Event | None:
    if not isinstance(obj, dict):
        errors.append({"index": index, "reason": f"expected a JSON object, got {_type_name(obj)}"})
        return None
    try:
        key = _key(obj, key_field)
    except UnicodeEncodeError:
        errors.append({"index": index, "reason": f"key field {key_field!r} is not valid UTF-8"})
        return None
    return Event(text.encode("utf-8"), key)


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8: {exc}") from exc


def _finish(events: list[Event], errors: list[dict[str, Any]]) -> list[Event]:
    if errors:
        kinds = {e["reason"].startswith("not JSON") for e in errors}
        raise BodyError(
            f"{len(errors)} item(s) rejected; nothing was published",
            errors,
            "invalid_json" if kinds == {True} else "not_object" if kinds == {False} else "mixed",
        )
    if not events:
        raise BodyError("body has no events", metric_reason="empty")
    return events


def parse_json(body: bytes, key_field: str | None = None) -> list[Event]:
    """``application/json``: one object, or an array of objects."""
    text = _decode(body)
    start = len(text) - len(text.lstrip(_WS))
    if text.startswith("[", start):
        return _finish(*_array(text, start + 1, key_field))
    try:
        obj, end = _DECODER.raw_decode(text, start)
    except ValueError as exc:
        raise BodyError(f"body is not JSON: {exc}") from exc
    if text[end:].strip(_WS):
        raise BodyError(f"body is not JSON: extra data at char {end}")
    errors: list[dict[str, Any]] = []
    event = _event(obj, text[start:end], 0, key_field, errors)
    return _finish([event] if event else [], errors)


def _array(text: str, pos: int, key_field: str | None):
    """Walks a top-level array with the C decoder per item, keeping each item's text."""
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in _WS:
            i += 1
        return i

    pos = skip(pos)
    if pos < n and text[pos] == "]":
        index, pos = 0, pos + 1
    else:
        index = 0
        while True:
            try:
                obj, end = _DECODER.raw_decode(text, pos)
            except ValueError as exc:
                raise BodyError(f"body is not JSON: array item {index}: {exc}") from exc
            event = _event(obj, text[pos:end], index, key_field, errors)
            if event is not None:
                events.append(event)
            index += 1
            pos = skip(end)
            if pos < n and text[pos] == ",":
                pos = skip(pos + 1)
                continue
            if pos < n and text[pos] == "]":
                pos += 1
                break
            raise BodyError(f"body is not JSON: expected ',' or ']' at char {pos}")
    if text[pos:].strip(_WS):
        raise BodyError(f"body is not JSON: extra data at char {pos}")
    return events, errors


def parse_ndjson(body: bytes, key_field: str | None = None) -> list[Event]:
    """``application/x-ndjson``: one object per line; blank lines are ignored."""
    text = _decode(body)
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, line in enumerate(text.split("\n")):
        line = line.strip(_WS)
        if not line:
            continue
        event = _item(line, index, key_field, errors)
        if event is not None:
            events.append(event)
    return _finish(events, errors)

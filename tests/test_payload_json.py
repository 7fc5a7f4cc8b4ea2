"""payload_json.loads must be json.loads, result for result and error for error."""

from __future__ import annotations

import json

import pytest

from beamstream.payload_json import loads

PAYLOADS = [
    b'{"timestamp":1700000000.5,"uid":"user-1"}',
    '{"timestamp": 1, "uid": "é"}',
    b'{"a": [1, 2.5e3, -0, null, true, false, "\\u00e9\\ud83d\\ude00", "\xc3\xa9"]}',
    b"NaN",
    b"-Infinity",
    b"12345678901234567890123456789",
    b'"just a string"',
    b"[]",
    b" {\"uid\": \"x\"}",  # leading whitespace: the scanner alone would refuse it
    b'{"uid": "x"} \n',  # trailing whitespace
    b"\xef\xbb\xbf{\"uid\": \"bom\"}",  # UTF-8 BOM: json.loads(bytes) accepts it
    '\ufeff{"uid": "bom"}',  # ... and refuses it in a str
    '{"uid": "utf16"}'.encode("utf-16"),
    '{"uid": "utf16le"}'.encode("utf-16-le"),
    "1".encode("utf-16-be"),
    b'"\xed\xa0\x80"',  # an encoded lone surrogate: json.loads(bytes) passes it
    b'{"uid": "x"} {"uid": "y"}',  # extra data
    b'{"uid": "x",}',
    b"",
    b"   ",
    b"\xff\xfe\xfd",
    b'"tab\tinside"',  # a raw control character in a string
    b"[" * 100_000 + b"]" * 100_000,  # too deep
    b"{\"uid\": 1}\x00",
]


def _outcome(parse, payload):
    try:
        return "ok", parse(payload)
    except RecursionError:
        return "RecursionError", None
    except Exception as exc:  # noqa: BLE001 - the point is to compare whatever is raised
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_loads_returns_and_raises_what_json_loads_does(payload) -> None:
    got, want = _outcome(loads, payload), _outcome(json.loads, payload)
    if want[0] == "ok" and isinstance(want[1], float) and want[1] != want[1]:  # NaN
        assert got[0] == "ok" and got[1] != got[1]
    else:
        assert got == want

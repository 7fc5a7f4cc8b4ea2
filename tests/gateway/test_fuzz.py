"""Hypothesis-generated bodies and headers: only documented answers, never a crash."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beamstream.gateway.auth import hash_token, new_token
from tests.gateway.harness import Gateway, running_gateway

pytestmark = pytest.mark.integration

TOKEN = new_token()
OURS = {200, 401, 413, 415, 503}  # answered by the gateway, always with a JSON body

_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=8), _json_values, max_size=5)
_bodies = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(str.encode),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(_objects, max_size=8).map(lambda v: json.dumps(v).encode()),
    st.lists(_json_values, max_size=8).map(lambda v: "\n".join(map(json.dumps, v)).encode()),
    st.just(b"x" * 5000),
)
_content_types = st.sampled_from(
    ["application/json", "application/x-ndjson", "application/json; charset=utf-8",
     "text/plain", "multipart/form-data; boundary=x", ""]
) | _header_text
_auth = st.sampled_from([f"Bearer {TOKEN}", f"bearer  {TOKEN} ", "Bearer", "", "Basic abc"]) | (
    _header_text
)
_headers = st.fixed_dictionaries(
    {"Content-Type": _content_types, "Authorization": _auth},
    optional={
        "X-Request-Id": _header_text,
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "zz"]),
        "Accept": _header_text,
        "Expect": st.sampled_from(["100-continue", "nonsense"]),
    },
)


@dataclass
class _Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self):
        return json.loads(self.text)


def _raw_post(url: str, path: str, body: bytes, headers: dict[str, str]) -> _Answer:
    """http.client, not requests: it sends header values requests would refuse."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        return _Answer(response.status, dict(response.getheaders()), text)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fuzz_gateway(kafka_broker, tmp_path_factory) -> Iterator[Gateway]:
    topic = kafka_broker.new_topic("ingest-fuzz", partitions=1)
    tokens: Path = tmp_path_factory.mktemp("fuzz") / "tokens.txt"
    tokens.write_text(hash_token(TOKEN) + "\n")
    argv = ["--sink", f"kafka://{kafka_broker.bootstrap}/{topic}", "--tokens-file", str(tokens),
            "--key-field", "k", "--max-body-bytes", "4096"]
    with running_gateway(argv) as gw:
        yield gw


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies, headers=_headers, path=st.sampled_from(["/v1/events", "/v1/events/", "/x"]))
def test_fuzzed_requests_get_documented_answers(fuzz_gateway: Gateway, body, headers, path) -> None:
    r = _raw_post(fuzz_gateway.url, path, body, headers)
    # Any 4xx is fine (aiohttp itself answers e.g. 417 to an unknown Expect);
    # the only 5xx allowed is the documented 503 with Retry-After.
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text)
    if r.status_code == 503:
        assert "Retry-After" in r.headers
    if path != "/v1/events":
        return
    if r.status_code in OURS:
        payload = r.json()
        assert payload["request_id"] == r.headers["X-Request-Id"]
        if r.status_code == 200:
            assert payload["accepted"] >= 1


def test_gateway_alive_after_fuzzing(fuzz_gateway: Gateway) -> None:
    assert fuzz_gateway.get("/healthz").status_code == 200
    r = fuzz_gateway.post('{"k":"still"}', TOKEN)
    assert r.status_code == 200, r.text

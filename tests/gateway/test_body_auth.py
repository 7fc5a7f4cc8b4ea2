"""Body parsing, tokens and the metrics text: the pure parts, no services."""

from __future__ import annotations

import pytest

from beamstream.gateway.auth import (
    TokensFileError,
    TokenStore,
    bearer_token,
    hash_token,
    new_token,
)
from beamstream.gateway.body import BodyError, parse_json, parse_ndjson
from beamstream.gateway.metrics import GatewayMetrics
from beamstream.gateway.server import main
from tests.gateway.harness import metric_samples


def test_array_items_keep_their_exact_text_and_keys() -> None:
    events = parse_json(b' [ {"a": 1 ,"k":"x"} , {"k": [1, 2]},{"k":null}] ', key_field="k")
    assert [(e.value, e.key) for e in events] == [
        (b'{"a": 1 ,"k":"x"}', "x"),
        (b'{"k": [1, 2]}', "[1,2]"),
        (b'{"k":null}', None),
    ]


@pytest.mark.parametrize("body", [b"[1,{}]", b"{}{}", b"[{}", b'{"a":Infinity}', b"\xef\xbb\xbf{}"])
def test_invalid_json_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(BodyError):
        parse_json(body)


def test_ndjson_reasons_name_lines() -> None:
    with pytest.raises(BodyError) as err:
        parse_ndjson(b'{}\n[]\n{"k":"\\ud800"}\n', key_field="k")
    assert [i["index"] for i in err.value.items] == [1, 2]
    assert "UTF-8" in err.value.items[1]["reason"]


def test_token_store_matches_only_listed_tokens(tmp_path) -> None:
    good = new_token()
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n\n{hash_token(good)} fleet-a\n")
    store = TokenStore.load(path)
    assert store.check(good) == "fleet-a"
    assert store.check(good + "x") is None and store.check("") is None
    assert good not in path.read_text()
    path.write_text(good + "\n")  # a plain token is not an entry
    with pytest.raises(TokensFileError) as err:
        TokenStore.load(path)
    assert good not in str(err.value)
    with pytest.raises(TokensFileError):
        hash_token("short")


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None


def test_hash_token_command(capsys, monkeypatch) -> None:
    assert main(["hash-token", "--name", "dev"]) == 0
    out, err = capsys.readouterr()
    token = err.strip().rsplit(" ", 1)[-1]
    assert out.strip() == f"{hash_token(token)} dev"


def test_metrics_text_format() -> None:
    m = GatewayMetrics()
    m.request("/v1/events", 200, 0.003)
    m.request("/v1/events", 503, 7.0)
    m.produced(5)
    m.error("not_object", 2)
    body, content_type = m.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = metric_samples(body.decode("utf-8"))
    bucket = "ingest_request_duration_seconds_bucket"
    assert samples[(bucket, (("le", "0.0025"),))] == 0
    assert samples[(bucket, (("le", "0.005"),))] == 1
    assert samples[(bucket, (("le", "10.0"),))] == 2
    assert samples[(bucket, (("le", "+Inf"),))] == 2
    assert samples[("ingest_request_duration_seconds_count", ())] == 2
    assert samples[("ingest_requests_total", (("code", "503"), ("route", "/v1/events")))] == 1
    assert samples[("message_errors_total", (("reason", "not_object"),))] == 2
    assert samples[("messages_produced_total", ())] == 5
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_each_gateway_counts_for_itself() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.produced(3)
    assert metric_samples(second.render()[0].decode())[("messages_produced_total", ())] == 0

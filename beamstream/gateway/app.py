"""The aiohttp application: ``POST /v1/events``, ``GET /healthz``, ``GET /metrics``.

Order of checks in ``POST /v1/events``, each answered before the next starts:
401 (token, before the body is read), 415 (content type), 413 (size, from
Content-Length and again while reading, via aiohttp's ``client_max_size``),
400 (every item validated), then publishing: 200 only after the broker
confirmed every event, 503 + Retry-After when it cannot within the bounded wait.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from beamstream.gateway.auth import TokenStore, bearer_token
from beamstream.gateway.body import BodyError, Event, parse_json, parse_ndjson
from beamstream.gateway.metrics import GatewayMetrics
from beamstream.gateway.publishing import PublishGate, Unavailable

EVENTS_ROUTE = "/v1/events"
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON_TYPES = frozenset({"application/json", "application/octet-stream", "text/plain", ""})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})

@dataclass(frozen=True)
class GatewayConfig:
    """Settings the routes need (the CLI builds it from its flags)."""

    sink: str  # redacted, for /healthz
    key_field: str | None = None
    tokens: TokenStore | None = None  # None: no authentication (loopback only)
    max_body_bytes: int = 1024 * 1024


CONFIG_KEY = web.AppKey("config", GatewayConfig)
GATE_KEY = web.AppKey("gate", PublishGate)
METRICS_KEY = web.AppKey("metrics", GatewayMetrics)


def _json(status: int, payload: dict[str, Any], request_id: str | None = None, **headers: str):
    if request_id:
        payload = {**payload, "request_id": request_id}
        headers[REQUEST_ID_HEADER] = request_id
    return web.json_response(payload, status=status, headers=headers)


def _request_id(request: web.Request) -> str:
    """The client's X-Request-Id when it is a sane token, else a new UUID."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


async def _read_events(request: web.Request, config: GatewayConfig) -> list[Event]:
    """Reads and validates the whole body; raises an HTTP answer or BodyError."""
    media_type = request.content_type.lower() if request.headers.get("Content-Type") else ""
    if media_type in NDJSON_TYPES:
        parse = parse_ndjson
    elif media_type in JSON_TYPES:
        parse = parse_json
    else:
        raise BodyError(
            f"unsupported Content-Type {media_type!r}: use application/json "
            "or application/x-ndjson",
            metric_reason="unsupported_media_type",
        )
    length = request.content_length
    if length is not None and length > config.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(config.max_body_bytes, length)
    try:
        body = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a plain body
        raise BodyError(f"body could not be read: {exc.args[0] if exc.args else exc}",
                        metric_reason="unreadable_body") from exc
    return parse(body, config.key_field)


async def post_events(request: web.Request) -> web.Response:
    started = time.perf_counter()
    config, metrics = request.app[CONFIG_KEY], request.app[METRICS_KEY]
    request_id = _request_id(request)
    response = await _post_events(request, config, metrics, request_id)
    metrics.request(EVENTS_ROUTE, response.status, time.perf_counter() - started)
    return response


async def _post_events(
    request: web.Request, config: GatewayConfig, metrics: GatewayMetrics, request_id: str
) -> web.Response:
    if config.tokens is not None:
        token = bearer_token(request.headers.get("Authorization"))
        if token is None or config.tokens.check(token) is None:
            metrics.error("unauthorized")
            return _json(
                401,
                {"error": "missing or invalid bearer token"},
                request_id,
                **{"WWW-Authenticate": 'Bearer realm="beamstream"'},
            )
    try:
        events = await _read_events(request, config)
    except web.HTTPRequestEntityTooLarge:
        metrics.error("body_too_large")
        return _json(
            413, {"error": f"body larger than {config.max_body_bytes} bytes"}, request_id
        )
    except BodyError as exc:
        metrics.error(exc.metric_reason, max(1, len(exc.items)))
        status = 415 if exc.metric_reason == "unsupported_media_type" else 400
        return _json(status, exc.to_json(), request_id)
    try:
        await request.app[GATE_KEY].publish(events, request_id)
    except Unavailable as exc:
        metrics.error("unavailable", len(events))
        retry = request.app[GATE_KEY].publish_timeout
        return _json(
            503, {"error": str(exc)}, request_id, **{"Retry-After": str(max(1, math.ceil(retry)))}
        )
    metrics.produced(len(events))
    return _json(200, {"accepted": len(events)}, request_id)


async def healthz(request: web.Request) -> web.Response:
    gate, config = request.app[GATE_KEY], request.app[CONFIG_KEY]
    request.app[METRICS_KEY].request("/healthz", 200)
    return web.json_response(
        {
            "status": "ok",
            "sink": config.sink,
            "publisher": "failing" if gate.last_error else "ok",
            "last_confirmed_publish": gate.last_ok,
        }
    )


async def metrics_page(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    metrics.request("/metrics", 200)
    body, content_type = metrics.render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


def make_app(config: GatewayConfig, gate: PublishGate) -> web.Application:
    """The application; starts and stops ``gate`` with the server."""
    # client_max_size bounds what request.read() accepts, chunked bodies included.
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG_KEY] = config
    app[GATE_KEY] = gate
    app[METRICS_KEY] = GatewayMetrics()
    app.router.add_post(EVENTS_ROUTE, post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)

    async def lifecycle(_app: web.Application):
        await gate.start()
        yield
        await gate.close()

    app.cleanup_ctx.append(lifecycle)
    return app

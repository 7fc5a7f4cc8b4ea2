"""Kafka URIs for a chosen client library."""

from __future__ import annotations


def with_client(uri: str, client: str) -> str:
    """``uri`` with ``client=`` added to its query."""
    return f"{uri}{'&' if '?' in uri else '?'}client={client}"

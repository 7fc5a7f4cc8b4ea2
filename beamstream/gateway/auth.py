"""Bearer tokens from a file, stored as SHA-256 digests, checked in constant time.

Tokens are random secrets of 256 bits (``new_token``), not passwords: for
such secrets a fast unsalted SHA-256 is enough (nobody can brute-force 2^256
inputs) and, unlike a salted slow hash, costs microseconds per request — the
approach API-key systems use. A leaked tokens file therefore reveals no
usable token. The presented token is hashed and compared with every entry
through ``hmac.compare_digest`` (no early exit), and tokens never reach a log.

File format, one token per line, ``#`` comments::

    sha256:<64 hex digits>  [name]
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sha256:"
MIN_TOKEN_CHARS = 20
_ENTRY = re.compile(r"^sha256:([0-9a-f]{64})(?:\s+(\S.*))?$")


class TokensFileError(ValueError):
    """The tokens file cannot be used; says which line and why (never the token)."""


def new_token() -> str:
    """A fresh random token: 32 bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The tokens-file entry for ``token``: ``sha256:<hex>``."""
    if len(token) < MIN_TOKEN_CHARS:
        raise TokensFileError(
            f"token too short ({len(token)} chars, need {MIN_TOKEN_CHARS}+): use a random token"
        )
    return PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenStore:
    """The accepted token digests and their names."""

    digests: tuple[tuple[bytes, str], ...]

    @classmethod
    def load(cls, path: str | Path) -> TokenStore:
        entries: list[tuple[bytes, str]] = []
        for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _ENTRY.match(line)
            if match is None:
                raise TokensFileError(
                    f"{path}:{number}: expected 'sha256:<64 hex digits> [name]' "
                    "(make entries with 'beamstream ingest hash-token')"
                )
            entries.append((bytes.fromhex(match.group(1)), match.group(2) or f"line {number}"))
        if not entries:
            raise TokensFileError(f"{path}: no tokens (every request would get 401)")
        return cls(tuple(entries))

    def check(self, token: str) -> str | None:
        """The name of the matching entry, or None; time does not depend on which matched."""
        presented = hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).digest()
        found: str | None = None
        for digest, name in self.digests:
            if hmac.compare_digest(presented, digest):
                found = name
        return found


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None

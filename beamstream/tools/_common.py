"""What the tools share: turning client errors into one line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

from beamstream.io.clients import ClientError
from beamstream.io.uris import UriError


def one_line_errors(tool: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Errors the user must fix (bad URI, no such topic, unreachable broker) as one stderr line."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @wraps(main)
        def run(argv=None) -> int:
            try:
                return main(argv)
            except (ClientError, UriError, FileNotFoundError) as exc:
                print(f"beamstream {tool}: error: {exc}", file=sys.stderr)
                return 2

        return run

    return wrap

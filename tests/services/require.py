"""Skip-or-fail policy for tests that need a real external service.

Locally a missing broker/emulator/database should skip the tests that need it,
but in CI (``BEAMSTREAM_REQUIRE_SERVICES=1``) a missing service must fail loudly
instead of silently turning the integration suite green.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_SERVICES_ENV = "BEAMSTREAM_REQUIRE_SERVICES"


def services_required() -> bool:
    """True when the environment demands that every service is available."""
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip().lower() in {"1", "true", "yes"}


def service_unavailable(reason: str) -> NoReturn:
    """Skip the requesting test, or fail it when services are required."""
    # ``from None``: callers usually sit in an ``except`` block, and the chained
    # driver traceback would bury the one-line reason.
    if services_required():
        message = f"{reason} ({REQUIRE_SERVICES_ENV}=1, so this is an error)"
        raise pytest.fail.Exception(message, pytrace=False) from None
    raise pytest.skip.Exception(reason, allow_module_level=True) from None

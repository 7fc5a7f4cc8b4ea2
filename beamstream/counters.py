"""Metric names and the Beam counters behind them, shared by every pipeline.

The three operational counters come from the original apps' library:
``messages_consumed``, ``messages_produced`` and ``message_errors`` (the
latter labelled by exception type, as a separate counter per type because
Beam counters carry a namespace and a name but no labels).
"""

from __future__ import annotations

from apache_beam.metrics import Metrics

NAMESPACE = "beamstream"
MESSAGES_CONSUMED = "messages_consumed"
MESSAGES_PRODUCED = "messages_produced"
MESSAGE_ERRORS = "message_errors"
LATE_RECORDS = "late_records"
DEAD_LETTERS = "dead_letters"


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def error_counter(error_type: str):
    """``message_errors`` for one exception type: name ``message_errors:<Type>``."""
    return Metrics.counter(NAMESPACE, f"{MESSAGE_ERRORS}:{error_type}")

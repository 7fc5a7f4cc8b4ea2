"""Host metrics collection: metric functions, host identity and the publishing loop.

``beamstream collect`` (``producer.main``) measures this host with psutil and
publishes samples to Kafka, Pub/Sub or a JSON Lines file; ``beamstream store``
persists them in a database.
"""

from beamstream.collect.host import HostIdentity, host_identity
from beamstream.collect.metrics import (
    COUNTER,
    GAUGE,
    TIMER,
    Sample,
    create_metric_functions,
    register_metric,
)

__all__ = [
    "COUNTER",
    "GAUGE",
    "TIMER",
    "HostIdentity",
    "Sample",
    "create_metric_functions",
    "host_identity",
    "register_metric",
]

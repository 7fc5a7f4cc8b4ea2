"""Pub/Sub IO: ``ReadFromPubSubMessages`` and ``WriteToPubSubMessages``.

``spec`` is what a read asks for and how messages become ``MessageBatch``es;
``read``/``write`` are the transforms. The local streaming DirectRunner reads
through its own feed (``beamstream.runners.direct``).
"""

from beamstream.io.pubsub.read import ReadFromPubSubMessages
from beamstream.io.pubsub.write import WriteToPubSubMessages

__all__ = ["ReadFromPubSubMessages", "WriteToPubSubMessages"]

"""Kafka IO: ``ReadFromKafka`` (a splittable-DoFn ``UnboundedSource``) and ``WriteToKafka``.

``spec``/``reader`` read partitions with kafka-python, ``source`` is the Beam
source and its commits, ``read``/``write`` are the transforms. The local
streaming DirectRunner reads through its own feed (``beamstream.runners.direct``).
"""

from beamstream.io.kafka.read import ReadFromKafka, deferred_reads, read_spec
from beamstream.io.kafka.write import WriteToKafka

__all__ = ["ReadFromKafka", "WriteToKafka", "deferred_reads", "read_spec"]

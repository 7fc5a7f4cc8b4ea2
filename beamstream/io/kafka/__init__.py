"""Kafka IO: ``ReadFromKafka`` (a splittable-DoFn ``UnboundedSource``) and ``WriteToKafka``.

``spec`` says what a read is, ``reader`` is the read loop over assigned
partitions, written against ``client`` (the few consumer and producer
operations it needs) which ``kafka_python`` (default) and ``confluent``
(librdkafka, ``client=confluent``) implement; ``source`` is the Beam source,
``commits`` its commits, ``read``/``write`` are the transforms. The local
streaming DirectRunner reads through its own feed (``beamstream.runners.direct``).
"""

from beamstream.io.kafka.read import ReadFromKafka, deferred_reads, read_spec
from beamstream.io.kafka.write import WriteToKafka

__all__ = ["ReadFromKafka", "WriteToKafka", "deferred_reads", "read_spec"]

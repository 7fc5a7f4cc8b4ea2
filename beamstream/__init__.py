"""beamstream: Beam pipelines for streaming metrics and inference over Kafka and Pub/Sub."""

__version__ = "0.1.0"

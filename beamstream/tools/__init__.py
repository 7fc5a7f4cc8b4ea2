"""Command-line tools that are not pipelines: publish, tail, topic admin, query, replay.

The broker tools use the plain clients (``beamstream.io.clients``), so each
works the same against Kafka and Pub/Sub.
"""

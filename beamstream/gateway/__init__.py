"""HTTP ingest gateway: JSON events over HTTP into a Kafka or Pub/Sub topic.

``beamstream ingest --sink URI`` runs it; docs/gateway.md describes the
contract. Modules: ``body`` (parse and validate request bodies), ``auth``
(hashed bearer tokens), ``publishing`` (bounded, confirmed publishing off the
event loop), ``metrics`` (prometheus_client metrics), ``app`` (routes), ``server`` (CLI).
"""

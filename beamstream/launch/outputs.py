"""Writing a pipeline's named outputs to the sinks its options name.

Every pipeline ends the same way: each output that has a sink URI is written
there through a ``Sink``; a local streaming read commits offsets only once
every Sink has written its results (the at-least-once promise of the
README's table), not when records are taken in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import apache_beam as beam

from beamstream.io.sinks import WriteMessages

# output name -> (step label, sink URI or None when the option is not set)
Sinks = Mapping[str, tuple[str, "str | None"]]


def write_outputs(
    outputs: Mapping[str, beam.PCollection], sinks: Sinks, kafka_config: dict[str, Any]
) -> list[beam.PCollection]:
    """Writes each output with a sink; returns what the writes return."""
    return [
        outputs[name] | label >> WriteMessages(uri, kafka_config=kafka_config)
        for name, (label, uri) in sinks.items()
        if uri
    ]

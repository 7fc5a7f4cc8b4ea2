"""Deploying the pipelines elsewhere than the DirectRunner: Dataflow Flex Templates, Flink.

``catalog`` finds the pipelines, ``metadata`` turns their ``PipelineOptions``
into Flex Template ``metadata.json`` files, ``launch`` is what the template
launcher runs inside the container (templates/launcher.py calls it).
"""

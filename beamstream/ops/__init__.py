"""Operating pipelines: Prometheus metrics export (scrape and push)."""

# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint typecheck unit bench clean services engines

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_DEMO): setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[plot]'
	touch $@

$(STAMP_TEST): setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(VENV)/bin/beamstream demo --out out

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check beamstream tests bench

typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy beamstream

# PostgreSQL, MariaDB, Prometheus and its Pushgateway from Debian's packages (installs need root).
services:
	bash scripts/services.sh

# Apache Kafka (Maven), Prism (Go), Beam's Flink job server (Maven, when served), cached in
# ~/.cache/beamstream/engines (BEAMSTREAM_ENGINES_DIR); each is skipped if its toolchain is missing.
engines:
	bash scripts/engines.sh

test: services engines lint typecheck
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

unit: $(STAMP_TEST)
	$(PY) -m pytest -q -m "not integration" $(PYTEST_ARGS)

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache build *.egg-info

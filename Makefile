# ConvScope: two commands on a fresh machine.
#   make serve   set up, build the model store, start TorchServe in the foreground
#   make test    set up, build the model store, run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup java prometheus store serve test test-unit reliability bench pictures proto archive clean distclean

setup: $(STAMP) java prometheus

# torch==2.14.1 / torchvision==0.29.1 install from this machine's disk (see README).
# The client (clients/python) installs first: the gateway uses its convscope.v1 stubs.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./clients/python -e ".[store,test]"
	touch $@

# TorchServe's frontend is Java: install a headless JRE when none is on the machine.
java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing openjdk-17-jre-headless (TorchServe's frontend needs Java)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# Prometheus and promtool (Debian's package) for the monitoring tests: the scrape config, the
# alert rules and their unit tests are checked with promtool, and a real Prometheus scrapes a
# test server. policy-rc.d keeps the package from starting its own daemon on :9090.
prometheus:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing prometheus (promtool checks deploy/prometheus; the tests run a real one)"; \
	  apt-get update -qq && { [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; } && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

store: $(STAMP)
	$(PY) -m convscope.build.store

serve: setup store
	$(PY) -m convscope.serving

test: setup store
	$(PY) -m pytest

test-unit: $(STAMP) prometheus
	$(PY) -m pytest tests/unit clients/python/tests

# The long reliability runs behind RELIABILITY.md (about an hour in all): 2,000 bad inputs per
# endpoint, explanations against classification, faults under load, capacity per endpoint (REST and
# gRPC, 60 s holds) and a 30-minute soak at 70% of it (these append to RELIABILITY.md), 120 index
# crash cycles (appended to BENCHMARKS.md).
reliability: setup store
	$(PY) benchmarks/fuzz.py --per-endpoint 2000 --seed 1 --write
	$(PY) benchmarks/starvation.py --seconds 40 --rate 4 --write
	$(PY) benchmarks/faults.py --seconds 30 --burst 300 --write
	$(PY) benchmarks/index_crash.py --cycles 120 --seed 0 --write
	$(PY) benchmarks/load.py --hold 60 --write
	$(PY) benchmarks/soak.py --minutes 30 --load 0.7 --write

# The benchmark suite behind BENCHMARKS.md (issue 9): every row measured side by side in one run and
# appended to BENCHMARKS.md as one dated section (about 10 min on 2 cores). QUICK=1: scaled down
# (about 3 min), written to var/bench/quick.md instead; tests/integration/test_bench.py runs it.
bench: setup store
	$(PY) benchmarks/suite.py $(if $(QUICK),--quick --out var/bench/quick.md,--write)

# The pictures and figures of docs/inspect.md's "What the built-in models show" (about a minute on
# 2 cores): six PNGs into docs/images/inspect/ and the measured figures printed, which
# tests/unit/test_inspect_meaning.py asserts. In-process over a copy of the built galleries.
pictures: store
	$(PY) benchmarks/inspect_pictures.py

# Regenerate the gRPC stubs (.py, .pyi, _grpc.py) from proto/; the tests fail when they drift.
proto: $(STAMP)
	$(PY) proto/generate.py

# Archive your own model: make archive SPEC=path/to/spec.toml [WEIGHTS=path/to/weights]
archive: $(STAMP)
	$(PY) -m convscope.build.archive --spec $(SPEC) $(if $(WEIGHTS),--weights $(WEIGHTS)) --export-path model_store

# Keeps var/index: the feature indexes hold what clients added (distclean removes them too).
clean:
	rm -rf var/logs var/tmp var/prometheus var/config.properties var/key_file.json model_store/*.mar .pytest_cache

distclean: clean
	rm -rf $(VENV) model_store/build var

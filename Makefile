# edgecall: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need first (Debian packages with apt, Python packages
# into .venv), so a fresh Debian 12 machine goes from nothing to a result.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Test peers and tools: the MQTT broker, the PBX, speech synthesis, certificates.
APT_PACKAGES := mosquitto mosquitto-clients kamailio espeak-ng sox libsox-fmt-all \
	sqlite3 openssl systemd
SILERO_VAD := silero-vad==6.2.3
DEPS_STAMP := $(VENV)/.deps-installed

.PHONY: demo test bench deps system-deps lint models clean

demo: deps
	$(BIN)/python -m edgecall.demo

test: deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks print tables (figures quoted in the README); they assert nothing about speed.
bench: deps
	@for f in tests/bench/bench_*.py; do \
		m=$$(basename $$f .py); echo "## $$m"; $(BIN)/python -m tests.bench.$$m || exit 1; \
	done

lint: deps
	$(BIN)/ruff check daemon tests models
	$(BIN)/ruff format --check daemon tests models

deps: system-deps $(DEPS_STAMP)

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi

$(DEPS_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps '$(SILERO_VAD)'
	touch $@

# Rebuild the shipped model files (dev-only dependencies: torch CPU, litert-torch),
# in their own venv so the appliance's .venv never carries torch.
TRAIN_VENV := .venv-train
TRAIN_STAMP := $(TRAIN_VENV)/.deps-installed

$(TRAIN_STAMP): pyproject.toml Makefile
	test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q --upgrade pip
	$(TRAIN_VENV)/bin/pip install -q 'torch==2.13.0'
	$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]))' \
		| $(TRAIN_VENV)/bin/pip install -q -r /dev/stdin
	touch $@

models: deps $(TRAIN_STAMP)
	$(MAKE) -C models all PYTHON_TRAIN=$(CURDIR)/$(TRAIN_VENV)/bin/python

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

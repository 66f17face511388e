# LLM Scratch Lab on a fresh Linux or macOS machine, in two commands:
#
#   make run    set up what is missing, then start the app (streamlit run app.py, http://localhost:8501)
#   make test   set up what is missing, test tools and a browser included, then run the tests (python -m pytest)
#
# "Set up" means: find a Python >= 3.10, create .venv, and pip install requirements.txt (and requirements-dev.txt
# for the tests) when the file changed since the last install; a stamp file in .venv remembers that install.
# Everything lands in .venv, except the browser `make test` installs with apt-get where it can (root or sudo).

.DEFAULT_GOAL := help
SHELL := /bin/sh

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Passed on: make test PYTEST_ARGS="tests/test_layout.py -x"; make run STREAMLIT_ARGS="--server.port 8600".
PYTEST_ARGS ?=
STREAMLIT_ARGS ?=

# The first of these that is Python >= 3.10 (macOS's own python3 can be 3.9); make PYTHON=/path/to/python picks one.
PYTHON ?= $(shell for p in python3 python3.14 python3.13 python3.12 python3.11 python3.10; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1 && { echo $$p; break; }; done)

# PyTorch's CPU-only wheel index, which requirements.txt names on its --extra-index-url line. pip retries an index
# it cannot reach for minutes, so it is probed first (PROBE_TIMEOUT seconds, name lookup included) and left out
# when it does not answer. CPU_INDEX=no leaves it out on purpose: on a Linux machine with an NVIDIA GPU that gives
# PyPI's torch, the CUDA build. On macOS it is never used: PyPI's macOS torch is already the CPU/MPS build.
TORCH_INDEX_URL ?= $(shell sed -n 's/^--extra-index-url[[:space:]]*//p' requirements.txt)
CPU_INDEX ?= auto
PROBE_TIMEOUT ?= 5
UNAME ?= $(shell uname -s)
# Exit 0 when the URL answers (2xx/3xx) within PROBE_TIMEOUT s. urlopen's own timeout does not cover the name
# lookup, so the request runs in a thread that is waited for at most that long.
PROBE_PY = import sys, threading, urllib.request as u; ok = []; \
	t = threading.Thread(target=lambda: ok.append(u.urlopen(sys.argv[1], timeout=$(PROBE_TIMEOUT))), daemon=True); \
	t.start(); t.join($(PROBE_TIMEOUT)); sys.exit(0 if ok else 1)

# What pip reads: requirements.txt, without its --extra-index-url line when the CPU index is not used; and
# requirements-dev.txt without its "-r requirements.txt" line (the first file is passed alongside).
REQS := $(VENV)/.pip-requirements.txt
DEV_REQS := $(VENV)/.pip-requirements-dev.txt
RUNTIME_STAMP := $(VENV)/.installed-requirements
DEV_STAMP := $(VENV)/.installed-requirements-dev

.PHONY: help run test setup setup-test pip-requirements browser clean-venv

help: ## list the targets
	@echo "LLM Scratch Lab: each target sets up what it needs first (Python >= 3.10, .venv, requirements)."
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-17s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: setup ## start the app: streamlit run app.py (STREAMLIT_ARGS="..." passed on)
	$(VENV)/bin/streamlit run app.py $(STREAMLIT_ARGS)

test: setup-test ## run the tests: python -m pytest (PYTEST_ARGS="..." passed on)
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(RUNTIME_STAMP) ## set up .venv with requirements.txt only

setup-test: $(DEV_STAMP) browser ## set up .venv with requirements-dev.txt too, and a browser for the browser tests

clean-venv: ## delete .venv (the next make run / make test builds it again)
	rm -rf $(VENV)

# Create the virtual environment. A half-made one (Debian's python3 without python3-venv stops after creating
# the folder) is removed again, so the next try starts clean.
$(PY):
	@if [ -z "$(PYTHON)" ]; then \
		echo "Python >= 3.10 was not found (python3 is $$(python3 --version 2>&1 | tail -n 1)): install one (macOS: brew install python@3.12; Debian/Ubuntu: apt-get install python3 python3-venv) or run make PYTHON=/path/to/python3.x." >&2; \
		exit 1; fi
	@if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then \
		echo "$(PYTHON) is $$($(PYTHON) --version 2>&1); LLM Scratch Lab needs Python >= 3.10: run make PYTHON=/path/to/python3.x." >&2; \
		exit 1; fi
	@if [ -e $(VENV) ]; then echo "$(VENV) exists but has no bin/python: run make clean-venv, then try again." >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

pip-requirements: ## write the requirements pip reads, leaving PyTorch's CPU index out where it is not used
	@mkdir -p $(VENV)
	@if [ "$(UNAME)" = Darwin ]; then \
		why="macOS: torch comes from PyPI, whose macOS build is the CPU/MPS one (no CPU-only index needed)"; \
	elif [ "$(CPU_INDEX)" = no ]; then \
		why="CPU_INDEX=no: torch comes from PyPI, which on Linux is the CUDA build (several GB)"; \
	elif [ -z "$(TORCH_INDEX_URL)" ] || $(firstword $(wildcard $(PY)) $(PYTHON)) -c "$(PROBE_PY)" "$(TORCH_INDEX_URL)" 2>/dev/null; then \
		why=""; \
	else \
		why="PyTorch's CPU index ($(TORCH_INDEX_URL)) is not reachable from here (probed for up to $(PROBE_TIMEOUT) s): installing without it, so torch comes from PyPI (on Linux the CUDA build, unless pip is configured with a local wheel)"; \
	fi; \
	if [ -n "$$why" ]; then echo "$$why"; grep -v '^--extra-index-url' requirements.txt > $(REQS); \
	else cp requirements.txt $(REQS); fi

# Install when requirements.txt is newer than the last install (or there was none); the probe runs only then.
$(RUNTIME_STAMP): requirements.txt | $(PY)
	@$(MAKE) --no-print-directory pip-requirements
	$(PIP) install -r $(REQS)
	@touch $@

# The test tools, with requirements.txt in the same pip call so that one resolution covers both files.
$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	@$(MAKE) --no-print-directory pip-requirements
	@grep -v '^-r ' requirements-dev.txt > $(DEV_REQS)
	$(PIP) install -r $(REQS) -r $(DEV_REQS)
	@touch $@ $(RUNTIME_STAMP)

# The browser tests drive a real chromium: $LLMLAB_CHROMIUM, else /usr/bin/chromium. Without one they are
# skipped with a note, so a failed install here is reported and the tests go on. Playwright's own browser
# download is not used: Debian's chromium is the one the suite is tested with.
browser: ## make sure the browser tests have a chromium (apt-get on Debian, a hint elsewhere)
	@if [ -n "$$LLMLAB_CHROMIUM" ] || [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$(UNAME)" = Linux ] && command -v apt-get >/dev/null 2>&1 && \
		{ [ "$$(id -u)" = 0 ] && sudo="" || { sudo -n true 2>/dev/null && sudo="sudo -n"; }; }; then \
		echo "Installing Debian's chromium for the browser tests (apt-get install -y chromium)."; \
		{ $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium did not install, so the browser tests will be skipped (on Ubuntu: snap install chromium, then export LLMLAB_CHROMIUM=/snap/bin/chromium)."; \
	elif [ "$(UNAME)" = Darwin ]; then \
		echo "No chromium, so the browser tests will be skipped: brew install --cask chromium, then export LLMLAB_CHROMIUM=/Applications/Chromium.app/Contents/MacOS/Chromium."; \
	else \
		echo "No chromium, so the browser tests will be skipped: install chromium, then export LLMLAB_CHROMIUM=/path/to/chromium."; \
	fi

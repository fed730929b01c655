# The only place that knows the command lines. `make book` and `make test` set up .venv on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
# pip may warn about absent local package mirrors on some machines; keep real errors visible.
QUIET  := { grep -v '^WARNING: Location' || true; }
export MPLBACKEND ?= Agg
export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONHASHSEED := 0

.PHONY: book check-book test test-slow test-browser test-runtime-like bench clean venv wheel

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip 2>&1 | $(QUIET)
	$(PIP) -r requirements.txt 2>&1 | $(QUIET)
	$(PIP) --no-deps -e . 2>&1 | $(QUIET)
	$(PY) -c "import samocta, torch, torchvision, segment_anything"
	touch $@

# the package's layers first (the contract in pyproject.toml), then the tests
test: $(STAMP)
	$(VENV)/bin/lint-imports --no-logo --no-cache
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# The real-browser test: Debian's Chromium (installed here if missing; needs root or sudo) driven by
# playwright through its executable path - no browser download.
test-browser: $(STAMP)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	$(PIP) -r requirements-browser.txt 2>&1 | $(QUIET)
	$(PY) -m pytest -m browser

# onnxruntime-web for the clicking chapter's browser decoder, from npm (copied into the built book)
node_modules/onnxruntime-web/package.json: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

book: $(STAMP) node_modules/onnxruntime-web/package.json
	$(PY) tools/build_book.py

# The built pages in headless Chromium: figures present, no error output, screenshots in _build/screenshots.
check-book: $(STAMP)
	$(PIP) -r requirements-browser.txt 2>&1 | $(QUIET)
	$(PY) -m pytest -m book

# A wheel with the tiny SAM's weights inside, for runtimes that cannot reach the repository: put it on
# Google Drive and set PIP (SAMOCTA_PIP) in a chapter's parameters to its path.
wheel: $(STAMP)
	rm -rf dist
	$(PY) -m pip wheel --no-deps --quiet --disable-pip-version-check -w dist . 2>&1 | $(QUIET)
	$(PY) tools/check_wheel.py dist/samocta-*.whl

# The package against Colab's versions (as of August 2026): a separate venv, the wheel installed as the
# install cell does, then the fast tests and chapters 01-03 in smoke mode. Not part of CI (downloads GBs).
test-runtime-like: wheel
	bash tools/runtime_like.sh

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build dist .venv-runtime-like node_modules

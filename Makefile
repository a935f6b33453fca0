# The two commands: `make lab` (learn) and `make test` (verify everything). See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 300
XDIST  := -n 2 -p infracourse.authoring.timing_report
UV_PIN := uv==$(shell sed -n 's/^uv-version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: lab test bootstrap services down status site labs clean-state

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "The course needs Python 3.11 (found: $$($(PYTHON) --version 2>&1)). Set PYTHON=/path/to/python3.11."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "Could not create .venv: on Debian/Ubuntu install python3.11-venv first."; exit 1; }
	@# uv installs the same pins from pyproject.toml in seconds; pip does it in minutes. -qq: only errors, not
	@# warnings about this machine's package-index settings, which a learner cannot act on.
	@echo "Installing the course's pinned packages into $(VENV) ..."
	@if $(BIN)/python -m pip install -qq --disable-pip-version-check $(UV_PIN) 2>/dev/null && \
	    $(BIN)/uv pip install -q --python $(BIN)/python -e . -e apps/orders_service; then :; \
	else \
	  echo "uv is not available here: installing with pip (a few minutes)"; \
	  $(BIN)/python -m pip install -qq --disable-pip-version-check -e . -e apps/orders_service; \
	fi
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

bootstrap: $(STAMP)

services: bootstrap
	$(BIN)/course up

lab: services
	$(BIN)/jupyter lab --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_start_here.ipynb

test: services
	$(BIN)/course labs check
	$(BIN)/ruff check src tests
	@rm -f _build/notebook_timings.json
	$(BIN)/pytest tests $(XDIST) --dist load --durations=15
	$(BIN)/pytest notebooks solutions $(NBVAL) $(XDIST) --dist loadscope

site: bootstrap
	$(BIN)/course site

labs: bootstrap
	$(BIN)/course labs build

status: bootstrap
	$(BIN)/course status

down: bootstrap
	$(BIN)/course down

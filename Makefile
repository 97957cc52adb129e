# Two commands do everything on a fresh machine:
#   make run    install what is needed, start storage, the local stand-ins and the app; print the URL
#   make test   install what is needed, lint and run the whole test suite
#   make lint   ruff and mypy only (the quick loop)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint setup browser checkov benchmarks clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's Chromium (a test tool's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# checkov pins old versions of common packages: it gets a virtual environment of its own.
checkov:
	scripts/checkov.sh --setup

run: setup
	$(PY) -m local_stack

# Configured in pyproject.toml: ruff checks every Python file, mypy too (strict for the app's own code).
# Both always run, so one pass shows every finding; the target fails if either found something.
lint: $(VENV)/.installed
	@status=0; \
	echo "$(PY) -m ruff check ."; $(PY) -m ruff check . || status=1; \
	echo "$(PY) -m mypy"; $(PY) -m mypy || status=1; \
	exit $$status

# Lint first: it fails in seconds, before the browser and checkov set-up.
test: setup lint browser checkov
	$(PY) -m pytest

# Every row of the speed table (issue 14), each measured against its own baseline in the same run.
benchmarks: setup
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/license_check.py
	$(PY) -m benchmarks.licenses
	$(PY) benchmarks/webhooks.py
	$(PY) benchmarks/contention.py
	$(PY) benchmarks/scale.py

clean:
	rm -rf .data .outbox

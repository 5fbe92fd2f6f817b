# fedopt: two commands on a fresh machine.
#   make run   - virtualenv, install, database, catalogues, dashboard
#   make test  - virtualenv, install with test extras, Chromium and poppler-utils if missing, lint, every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Reinstall only when the project's dependencies change.
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint format install install-test chromium setup bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

install: $(STAMP)
install-test: $(TEST_STAMP)

setup: install
	$(VENV)/bin/fedopt setup

run: setup
	$(VENV)/bin/fedopt dashboard --port $(PORT)

# Debian chromium (the browser tests, and the PDF of the usage review); poppler-utils (the tests read that PDF).
chromium:
	@{ command -v chromium && command -v pdfinfo && command -v pdftoppm && command -v pdftotext; } >/dev/null 2>&1 || { \
	  echo "Installing Debian chromium and poppler-utils for the browser and report tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium poppler-utils >/dev/null; }

# Lint and format check (configured in pyproject.toml); `make format` applies the formatting.
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The suite runs its backend tests on SQLite and on a throwaway PostgreSQL server on loopback.
test: install-test chromium lint
	@pgdir=$$(mktemp -d /tmp/fedopt-pg.XXXXXX) && chmod 755 $$pgdir && \
	port=$$($(PY) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') && \
	url=$$(scripts/pg-test-server start $$pgdir/data $$port) || { rm -rf $$pgdir; exit 1; }; \
	FEDOPT_TEST_POSTGRES_URL=$$url FEDOPT_TEST_POSTGRES_DATA=$$pgdir/data FEDOPT_TEST_POSTGRES_PORT=$$port \
	  $(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	scripts/pg-test-server stop $$pgdir/data; rm -rf $$pgdir; exit $$status

bench: install-test
	$(PY) benchmarks/accuracy.py
	$(PY) benchmarks/speed.py

clean:
	rm -rf $(VENV) .fedopt .pytest_cache

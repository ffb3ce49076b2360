# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The code defaults to APP_ENV=production (fail closed); local runs say development, and accept
# Firebase emulator tokens (`staysync token`).
export APP_ENV ?= development
ifneq ($(APP_ENV),production)
export FIREBASE_AUTH_EMULATOR_HOST ?= 127.0.0.1:9099
endif

.PHONY: run test schema install clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/staysync serve

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --cov=domain --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100

schema: $(STAMP)
	$(BIN)/python -c "from app.api.schema import export_sdl, SCHEMA_PATH; SCHEMA_PATH.write_text(export_sdl())"

clean-data:
	rm -rf .data

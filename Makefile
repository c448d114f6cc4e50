# `make run` and `make test` work on a fresh machine: the first call creates .venv/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test worker bot eval lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[ml,test]"
	touch $(STAMP)

run: $(STAMP)  ## the bot on the embedded defaults (migrations, seed gallery, worker + bot)
	$(BIN)/landmarks run

test: $(STAMP)  ## the whole test suite (unit, migrations, evaluation, end-to-end)
	$(BIN)/python -m pytest -ra

worker: $(STAMP)
	$(BIN)/landmarks worker

bot: $(STAMP)
	$(BIN)/landmarks bot

eval: $(STAMP)
	$(BIN)/landmarks eval ../shared/datasets/landmarks-dev

clean:
	rm -rf $(VENV) .pytest_cache

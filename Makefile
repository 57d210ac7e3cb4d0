# Two commands do everything on a fresh machine:
#   make demo   set up, load the demo store into ./loyal-data and serve it
#   make test   set up, then lint and run the tests on SQLite and PostgreSQL
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup demo test

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(VENV)/bin/loyal migrate --noinput
	$(VENV)/bin/loyal demo $(ARGS)

test: setup
	VENV=$(VENV) scripts/test

# The two commands a newcomer needs: `make run` and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint install fuzz

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	bin/run

test: $(STAMP)
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fuzz: $(STAMP)
	bin/fuzz-schema

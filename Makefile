# Syrena: `make run` starts everything locally, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench migrate-check clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Web on http://127.0.0.1:5000, the scheduler and the dispatcher, on SQLite, SMS printed here.
run: $(STAMP)
	SYRENA_ENV=development $(BIN)/flask --app wsgi db upgrade
	SYRENA_ENV=development $(BIN)/python run.py

# Every test on SQLite; again on PostgreSQL when TEST_DATABASE_URL is set (CI sets it).
test: $(STAMP)
	env -u TEST_DATABASE_URL $(BIN)/python -m pytest -q
	if [ -n "$$TEST_DATABASE_URL" ]; then $(BIN)/python -m pytest -q; fi

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache

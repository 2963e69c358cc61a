# Syrena: `make run` starts everything locally, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench translations migrate-check clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Local settings, written once (mode 0600) and then read by every command (config.py loads
# .env), so `.venv/bin/flask --app wsgi ...` works from any shell, not only under make.
.env:
	@umask 077 && printf '%s\n' \
	  '# Written by `make run` for local use; production sets its own environment (README).' \
	  'SYRENA_ENV=development' \
	  "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(32))')" > .env
	@echo "  Wrote .env (SYRENA_ENV=development and a new SECRET_KEY)."

# Web on http://127.0.0.1:5000, the scheduler and the dispatcher, on SQLite, SMS printed here.
run: $(STAMP) .env
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/python run.py

# Every test on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set (CI sets it), side by side.
# Both passes always run; each prints a summary line, and the target fails if either did.
test: $(STAMP)
	@$(BIN)/python -m tests.passes

# After editing a text in translations/pl/ (the source) or a translation: find the keys the code
# names, bring English and Ukrainian in line (new keys untranslated, changed ones fuzzy), compile
# the .mo files the service reads, and list what a translator still has to do.
translations: $(STAMP)
	$(BIN)/python -m catalogs extract
	$(BIN)/python -m catalogs update
	$(BIN)/python -m catalogs compile
	$(BIN)/python -m catalogs check

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache

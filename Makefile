# Kassa: `make run` starts everything for a demo; `make test` runs every check CI runs.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PY_DIRS := gateway drivers merchant_portal sandbox_bank tests bench

.PHONY: setup run test test-fast lint bench browser clean translations

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $@

# The translation catalogues are compiled here, not committed (.gitignore): setup, run and test
# all depend on them, and a .mo older than its .po is compiled again.
CATALOGUES := $(wildcard gateway/translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)

setup: $(BIN)/.installed $(COMPILED)

gateway/translations/%/LC_MESSAGES/messages.mo: gateway/translations/%/LC_MESSAGES/messages.po $(BIN)/.installed
	$(BIN)/pybabel compile --statistics -l $* -i $< -o $@

# After marking new strings with _(): collect them into messages.pot, add them to every
# catalogue (new ones empty, changed ones fuzzy), then translate and run `make setup`.
# tests/integration/test_translations.py fails while a catalogue lacks a translation.
translations: $(BIN)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k N_ --no-location --sort-output \
	  --project Kassa --copyright-holder Kassa -o gateway/translations/messages.pot .
	$(BIN)/pybabel update -i gateway/translations/messages.pot -d gateway/translations \
	  --ignore-obsolete --ignore-pot-creation-date -w 100
	$(BIN)/pybabel compile --statistics -d gateway/translations

run: setup
	$(BIN)/kassa run

# Debian's chromium drives the browser tests (Playwright's own browser download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium" >&2; fi; }

lint: setup
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

# Two workers (pytest-xdist): the suite's processes, browsers and databases keep both cores busy.
TEST_WORKERS ?= 2

test: setup browser lint
	$(BIN)/pytest -n $(TEST_WORKERS)

# The fast tier while editing: pure unit tests (no database, process or network), without the
# slow ones. Seconds, not minutes; `make test` before pushing still runs everything.
test-fast: setup
	$(BIN)/pytest tests/unit -m "not slow" -q

bench: setup
	$(BIN)/python -m bench.qr

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis

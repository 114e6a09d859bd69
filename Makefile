# The README's two commands: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench stop status chromium promtool

# (bash with pipefail: the install's progress is filtered, its failure is not; nothing to
# install is no failure)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

$(STAMP): requirements.txt requirements-dev.txt
	@echo "installing the Python packages into $(VENV) (first time: a minute or two)…"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.txt \
		| { grep --line-buffered -E '^(Collecting|Installing collected)' || true; } | sed -u 's/^/  /'
	@touch $(STAMP)
	@echo "Python packages installed."

# Node toolchain for the Ostium localnet: anvil (chain) and solc (compiler), pinned in package-lock.json.
NODE_STAMP := node_modules/.installed-stamp
$(NODE_STAMP): package.json package-lock.json
	@echo "installing the Ostium localnet toolchain (anvil, solc) with npm…"
	@npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

run: install
	$(BIN)/python manage.py run $(if $(PORT),--port $(PORT))

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench $(BENCH)

stop:
	$(BIN)/python -m config.embedded stop

status:
	$(BIN)/python -m config.embedded status

# The browser tests drive Debian's Chromium (never `playwright install`); CI runs this first.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The alert rules' tests run Debian's promtool (package `prometheus`); CI runs this first.
promtool:
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus)

# cityrisk — two commands on a fresh machine: `make demo` and `make test`.
# Works as root or as a user with sudo on Debian/Ubuntu; elsewhere set DATABASE_URL.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000
HOST   ?= 127.0.0.1
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup venv db migrate demo serve test lint typecheck pytest clean-db db-down clean
.PHONY: broker broker-down clean-broker system-deps vendor

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# -- environment ------------------------------------------------------------------------------
$(VENV)/bin/python:
	@echo "==> creating virtualenv $(VENV)"
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "==> python3-venv is missing: installing it with apt-get"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing cityrisk and its test extras into $(VENV) (only when pyproject.toml changed)"
	@$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

# GDAL's ogrinfo is a real OGC API client the tests use; Mosquitto and PostGIS come with
# `cityrisk mq up` / `cityrisk db up`.
system-deps: ## Debian packages the tests use (gdal-bin), installed with apt when missing
	@command -v ogrinfo >/dev/null || { \
	  echo "==> installing gdal-bin (ogrinfo) with apt-get"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q gdal-bin; }
	@# fonts-wqy-zenhei: CJK glyphs for the legend (重大 / 较大 / 一般 / 低) in the screenshots.
	@command -v chromium >/dev/null && \
	  dpkg-query -W -f='$${Status}' fonts-wqy-zenhei 2>/dev/null | grep -q 'ok installed' || { \
	  echo "==> installing chromium and fonts-wqy-zenhei (the map page's browser test) with apt-get"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-zenhei; }

# The map page's JS/CSS (leaflet and plugins, pinned in package-lock.json), served by the app at
# /static/vendor/<pkg>/; never committed. npm comes from apt when missing (bare Debian 12).
NODE_STAMP := node_modules/.cityrisk-installed

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { \
	  echo "==> installing nodejs and npm with apt-get"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	@echo "==> npm ci: the map page's browser assets (only when package-lock.json changed)"
	@npm ci --no-audit --no-fund --ignore-scripts
	@touch $(NODE_STAMP)

vendor: $(NODE_STAMP) ## the map page's JS/CSS into node_modules (npm ci, pinned versions)

venv: $(STAMP) ## virtualenv with cityrisk installed (reinstalls only when pyproject.toml changes)

db: venv ## PostGIS up: the project-local cluster under .data/pg unless DATABASE_URL is set
	@echo "==> database"
	@$(BIN)/cityrisk db up

migrate: db ## schema at head (alembic upgrade head)
	@echo "==> migrations"
	@$(BIN)/cityrisk migrate

broker: venv ## MQTT broker up: a local Mosquitto under .data/mosquitto unless MQTT_URL is set
	@echo "==> MQTT broker"
	@$(BIN)/cityrisk mq up

setup: migrate broker vendor ## venv + PostGIS + migrations + MQTT broker (idempotent)
	@echo "==> setup done; database: $$($(BIN)/cityrisk db url 2>/dev/null | sed -E 's#://([^:]+):[^@]*@#://\1:***@#')"

# -- run --------------------------------------------------------------------------------------
demo: setup ## setup + demo city + the API on http://$(HOST):$(PORT), with live readings replayed
	@echo "==> loading the demo city (Cambridge, MA; idempotent) and the default warning rules"
	@$(BIN)/cityrisk load demo > /dev/null
	@$(BIN)/cityrisk rules load > /dev/null
	@mkdir -p .data
	@echo "==> an admin token for this demo (send it as 'Authorization: Bearer <token>'; paste it in the"
	@echo "    map's impact panel to open incidents; writes need one, the map itself does not):"
	@umask 077; $(BIN)/cityrisk token create --role admin --name demo-admin --replace | tail -1 | tee .data/admin-token; test -s .data/admin-token
	@echo "==> replaying the 'demo' scenario in the background (log: .data/replay.log, truth: .data/replay-truth.json)"
	@echo "==> serving the demo on http://$(HOST):$(PORT) (Ctrl-C stops both)"
	@# The replay's clock runs behind the real one (it starts in the past at speed 10), so the
	@# offline check would call every demo sensor silent: it is off for the demo.
	@$(BIN)/cityrisk replay demo --url http://$(HOST):$(PORT) --speed 10 --duration 4h \
	    --truth .data/replay-truth.json > .data/replay.log 2>&1 & \
	  trap "kill $$! 2>/dev/null" EXIT; \
	  CITYRISK_OFFLINE_CHECK_S=0 $(BIN)/cityrisk serve --host $(HOST) --port $(PORT)

serve: venv ## the API only (no setup)
	@$(BIN)/cityrisk serve --host $(HOST) --port $(PORT)

# -- checks -----------------------------------------------------------------------------------
lint: venv ## ruff check + ruff format --check
	@echo "==> ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: venv ## mypy (strict on gis/ and layers/)
	@echo "==> mypy"
	@$(BIN)/mypy app gis layers

pytest: setup system-deps ## the test suite against real PostGIS
	@echo "==> pytest"
	@$(BIN)/pytest

test: lint typecheck pytest ## setup + lint + types + the whole test suite

# -- housekeeping -----------------------------------------------------------------------------
db-down: venv ## stop the local cluster
	@$(BIN)/cityrisk db down

broker-down: venv ## stop the local MQTT broker
	@$(BIN)/cityrisk mq down

clean-broker: venv ## stop the local MQTT broker and delete its queued messages and logins
	@$(BIN)/cityrisk mq down || true
	@rm -rf .data/mosquitto .data/mqtt.json

clean-db: venv ## stop the local cluster and delete its data (.data/)
	@echo "==> removing the local cluster"
	@$(BIN)/cityrisk mq down || true
	@$(BIN)/cityrisk db down || true
	@rm -rf .data

clean: clean-db ## also remove the virtualenv
	@rm -rf $(VENV)

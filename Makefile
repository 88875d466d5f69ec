# emailkit workbook. Every target bootstraps .venv on first use.
#   make lab        open the workbook in JupyterLab (a real Mailpit when there is one, else the sandbox)
#   make test       every test: Mailpit built (with Go), unit, integration on real sockets against the
#                   sandbox and real Mailpit, notebooks (nbmake), the Voila app in Chromium
#   make test-fast  the inner loop: unit and integration tests not marked slow, no notebooks, no browser
#   make mailpit    build real Mailpit (pinned) from the Go module proxy, with its web UI, into .tools/
#   make run        execute every notebook unattended into build/notebooks/
#   make app        serve the decision widget as a standalone page (Voila)
#   make bench      measure and print figures (sandbox vs real Mailpit vs a bare SMTP sink, SMTP vs REST)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.emailkit-installed
PORT   ?= 8866
# The Mailpit release the lab builds, docker-compose.yml runs and the contract tests read (one pin:
# tests/unit/test_project_files.py keeps it equal to emailkit.mailboxes.MAILPIT_VERSION).
MAILPIT_VERSION := v1.33.1
# Bytecode caches on: an environment with PYTHONDONTWRITEBYTECODE set makes every test process, kernel
# and hub server compile its imports again, and pytest rewrite every test module's asserts again
# (collection went from 15 s to 5 s here with it unset). __pycache__/ is git-ignored.
unexport PYTHONDONTWRITEBYTECODE
# JupyterLab refuses to run as root (any container) unless told.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: lab app run test test-fast test-unit test-notebooks test-e2e mailpit maybe-mailpit chromium bench strip clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,app]'
	$(BIN)/nbstripout --install --attributes .gitattributes >/dev/null 2>&1 || true
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00_start_here.ipynb

# make app: seconds before an idle kernel (a closed tab's) is stopped, and how often to look.
CULL_IDLE  ?= 120
CULL_EVERY ?= 30
# Only the decision app (app/decide.ipynb), in a Voila template that asks no CDN for anything;
# kernels of closed tabs are culled once idle for CULL_IDLE seconds. Reports: $EMAILKIT_REPORTS_DIR or reports/.
app: $(STAMP)
	JUPYTER_PATH="$(CURDIR)/app/share" $(BIN)/voila app/decide.ipynb --template=emailkit-app --no-browser \
	  --port=$(PORT) --Voila.ip=127.0.0.1 \
	  --MappingKernelManager.cull_idle_timeout=$(CULL_IDLE) --MappingKernelManager.cull_interval=$(CULL_EVERY)

run: $(STAMP)
	$(BIN)/emailkit run --notebooks notebooks --output build/notebooks

# make workshop: a JupyterHub for PARTICIPANTS people on this machine (loopback; WORKSHOP_IP=0.0.0.0 for the
# room's network), its proxy from npm (deploy/proxy, lockfile-pinned). Ctrl-C stops everything. docs/workshop.md
PARTICIPANTS ?= 3
WORKSHOP_IP  ?= 127.0.0.1
WORKSHOP_PORT ?= 8000
.PHONY: workshop
workshop: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,app,workshop]'
	@test -x deploy/proxy/node_modules/.bin/configurable-http-proxy || npm ci --prefix deploy/proxy --no-audit --no-fund
	$(BIN)/emailkit workshop --participants $(PARTICIPANTS) --ip $(WORKSHOP_IP) --port $(WORKSHOP_PORT)

bench: $(STAMP)
	$(BIN)/python -m emailkit.bench

# Real Mailpit from source: Go module proxy + npm (for its web UI). Needs Go and Node.
mailpit:
	@scripts/build-mailpit $(MAILPIT_VERSION)

# make test builds Mailpit when Go is on PATH; without Go the Mailpit runs are skipped (and fail under CI).
maybe-mailpit:
	@if command -v go >/dev/null 2>&1; then scripts/build-mailpit $(MAILPIT_VERSION); \
	else echo "Go is not on PATH: testing against the embedded sandbox only ('make mailpit' needs Go)"; fi

# Debian's chromium for the Voila browser test (Playwright's own browser download cannot work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser test..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser test needs Chromium: run 'sudo apt-get install chromium' (Debian/Ubuntu)"; exit 1; \
	  fi; }

test-unit: $(STAMP) maybe-mailpit
	$(BIN)/nbstripout --verify notebooks/*.ipynb
	$(BIN)/python -m pytest tests -p no:nbmake -m "not e2e" -n 2 -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -p no:nbmake -m "not e2e and not slow" -n 2 --dist loadfile -q -x

# Every notebook against both backends: real Mailpit (when built) and the embedded sandbox.
test-notebooks: $(STAMP) maybe-mailpit
	@if [ -x .tools/bin/mailpit ] || command -v mailpit >/dev/null 2>&1; then \
	  echo "notebooks against real Mailpit:"; \
	  EMAILKIT_MAILBOX=mailpit $(BIN)/python -m pytest --nbmake --nbmake-timeout=180 -n 2 -q notebooks/; \
	fi
	@echo "notebooks against the embedded sandbox:"
	EMAILKIT_MAILBOX=sandbox $(BIN)/python -m pytest --nbmake --nbmake-timeout=180 -n 2 -q notebooks/

test-e2e: $(STAMP) chromium
	$(BIN)/python -m pytest tests/e2e -m e2e -q

test: test-unit test-notebooks test-e2e

# Strip outputs and store each notebook exactly as the nbstripout git filter writes it.
strip: $(STAMP)
	@for nb in notebooks/*.ipynb; do $(BIN)/python -m nbstripout < "$$nb" > "$$nb.tmp" && mv "$$nb.tmp" "$$nb"; done

clean:
	rm -rf build reports .pytest_cache

# emailkit workbook. Every target bootstraps .venv on first use.
#   make lab    open the workbook in JupyterLab (real Mailpit if MAILPIT_URL answers, else the sandbox)
#   make test   every test: unit, integration (real sockets), notebooks (nbmake), Voila app in Chromium
#   make run    execute every notebook unattended into build/notebooks/
#   make app    serve the decision widget as a standalone page (Voila)
#   make bench  measure the sandbox and print figures

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.emailkit-installed
PORT   ?= 8866

.PHONY: lab app run test test-unit test-notebooks test-e2e chromium bench strip clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,app]'
	$(BIN)/nbstripout --install --attributes .gitattributes >/dev/null 2>&1 || true
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb

app: $(STAMP)
	$(BIN)/voila notebooks/07_decide.ipynb --no-browser --port=$(PORT) --Voila.ip=127.0.0.1

run: $(STAMP)
	$(BIN)/emailkit run --notebooks notebooks --output build/notebooks

bench: $(STAMP)
	$(BIN)/python -m emailkit.bench

# Debian's chromium for the Voila browser test (Playwright's own browser download cannot work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser test..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser test needs Chromium: run 'sudo apt-get install chromium' (Debian/Ubuntu)"; exit 1; \
	  fi; }

test-unit: $(STAMP)
	$(BIN)/nbstripout --verify notebooks/*.ipynb
	$(BIN)/python -m pytest tests -m "not e2e" -n 2 -q

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=180 -n 2 -q notebooks/

test-e2e: $(STAMP) chromium
	$(BIN)/python -m pytest tests/e2e -m e2e -q

test: test-unit test-notebooks test-e2e

# Strip outputs and store each notebook exactly as the nbstripout git filter writes it.
strip: $(STAMP)
	@for nb in notebooks/*.ipynb; do $(BIN)/python -m nbstripout < "$$nb" > "$$nb.tmp" && mv "$$nb.tmp" "$$nb"; done

clean:
	rm -rf build reports .pytest_cache

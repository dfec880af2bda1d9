# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean install system-deps schema translations vendor

# What the product and its tests need from the system: the DejaVu font (invoice PDFs), socat (serial PTY
# pairs), mbpoll (an independent Modbus master), openssl (evidence checks), pg_dump (backups), pdftoppm and
# zbarimg (reading invoices back as a person and a banking app would), chromium (the browser tests, driven by
# Playwright — never a downloaded browser). Installed with apt-get when missing.
# Each tool with the Debian package that brings it; only the packages of missing tools are installed (a machine
# whose Node.js came from elsewhere already has npm, and Debian's npm would conflict with it).
SYSTEM_TOOLS := socat:socat mbpoll:mbpoll openssl:openssl pg_dump:postgresql-client pdftoppm:poppler-utils \
  zbarimg:zbar-tools chromium:chromium npm:npm
system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: missing$$missing — the tests that need them will skip"; fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,postgres,server]'
	touch $(STAMP)

install: $(STAMP) vendor

# The chart library the pages draw with (docs/dashboards.md): installed from the npm registry at the version
# package-lock.json pins (`npm ci`), and copied where the app serves it. Never committed: another project's code
# is installed, not vendored. Every target that serves or tests the pages depends on it.
VENDOR := cloud/static/vendor
VENDORED := $(VENDOR)/uPlot.iife.min.js
vendor: $(VENDORED)
$(VENDORED): package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed to install the chart library (apt-get install npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	cp node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE
	touch $(VENDORED)

# The demo serves the cloud; a worker runs beside it (as in production beside gunicorn, docs/jobs.md) once the
# demo's database is seeded — the cloud's log appears then — and stops with it.
DEMO_DIR := var/demo
demo: $(STAMP) system-deps vendor
	rm -rf $(DEMO_DIR); $(BIN)/balans demo --workdir $(DEMO_DIR) & demo=$$!; \
	trap 'kill $$worker 2>/dev/null; kill $$demo 2>/dev/null; wait' INT TERM EXIT; \
	while [ ! -f $(DEMO_DIR)/cloud.log ] && kill -0 $$demo 2>/dev/null; do sleep 0.5; done; \
	BALANS_DATABASE_URL=sqlite:///$(CURDIR)/$(DEMO_DIR)/cloud.sqlite3 BALANS_INSTANCE_PATH=$(CURDIR)/$(DEMO_DIR)/instance \
	  $(BIN)/balans cloud worker >>$(DEMO_DIR)/worker.log 2>&1 & worker=$$!; \
	wait $$demo

# The suite runs on every core (pytest-xdist): each test has its own database copy and free ports, so the
# workers never share state (2 cores: 9 min instead of 16). A file's tests stay on one worker, in order
# (--dist loadfile): a module-scoped fixture (the installer's first batch, the remote gateway) is built once.
test: $(STAMP) system-deps vendor
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The inner loop while editing: ruff and the suite without the end-to-end runs (marked slow) and without the
# PostgreSQL half of the cloud tests. `make test` is what CI runs; run it before you push.
test-fast: $(STAMP) system-deps vendor
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not postgres"

# Every benchmark at full size (the figures quoted in the notes); QUICK=--quick for a fast pass.
bench: $(STAMP)
	for b in edge_poll edge_protocols edge_balance edge_drain edge_rss cloud_ingest billing_run payments_import payments_parse register_import dashboard_pages; do \
	  echo "== $$b"; $(BIN)/python -m bench.$$b $(QUICK) || exit 1; done

# The cloud's schema has not been released yet: its one Alembic migration is regenerated from cloud/models.py.
schema: $(STAMP)
	rm -f cloud/migrations/versions/*.py
	tmp=$$(mktemp -d) && $(BIN)/python -c "import sys; from cloud.migrate import revision; revision(sys.argv[1], 'initial schema')" "sqlite:///$$tmp/schema.sqlite3" && rm -rf $$tmp
	mv cloud/migrations/versions/*_initial_schema.py cloud/migrations/versions/0001_initial_schema.py

# The word catalogues (docs/cloud.md): the keys code and templates use → messages.pot → each language's
# messages.po (a new key arrives empty, to translate) → the messages.mo Flask-Babel reads (committed too).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --add-location=file --sort-output --project=Balans --version=0.1 \
	  --copyright-holder=Balans --msgid-bugs-address="the Balans office" -o cloud/translations/messages.pot .
	$(BIN)/pybabel update -i cloud/translations/messages.pot -d cloud/translations --no-fuzzy-matching \
	  --ignore-obsolete
	$(BIN)/pybabel compile -d cloud/translations --statistics

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis var

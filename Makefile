# Okta Personal lake: `make help` lists the targets.
# Only Python 3, git and make are needed; everything else lands in .venv.

# PYTHON picks the interpreter (3.10-3.14). VENV defaults to .venv; give another one per interpreter,
# e.g. `make test PYTHON=python3.13 VENV=.venv313`: a venv built with another Python is refused, not reused.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
BQVENV := .venv-bq
BQSTAMP := $(BQVENV)/.installed
DOCSTAMP := $(VENV)/.installed-docs
SAMPLE := sample/okta-export.jsonl.gz
LAKE   := lake
EVENTS ?= 20000
N      ?= 1000000
REGION ?= us-central1
IMAGE  ?= $(REGION)-docker.pkg.dev/$(PROJECT)/okta-lake/okta-personal-lake:0.1.0

.DEFAULT_GOAL := help
.PHONY: help venv venv-check run run-streaming run-files backfill coverage audit maintain template test test-fast docs lint format bench bench-backfill bench-orgs clean

help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): setup.py | venv-check
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[local,test]'
	touch $(STAMP)

# bqemulator (the BigQuery stand-in the tests start) pins a DuckDB that differs from ours: its own venv.
$(BQSTAMP):
	test -x $(BQVENV)/bin/python || $(PYTHON) -m venv $(BQVENV)
	$(BQVENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQVENV)/bin/python -m pip install --quiet bqemulator==1.4.0 duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy==2.4.6
	$(BQVENV)/bin/python -c "import duckdb, duckdb_extension_spatial, os; duckdb.connect().execute(\"INSTALL '\" + os.path.join(os.path.dirname(duckdb_extension_spatial.__file__), 'extensions', 'v1.5.5', 'spatial.duckdb_extension') + \"'\")"
	touch $(BQSTAMP)

# The docs extra (MkDocs and its theme) has its own stamp: only `make docs` needs it.
$(DOCSTAMP): setup.py $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $(DOCSTAMP)

venv: $(STAMP) ## Create .venv (or VENV) and install the package with its test tools

venv-check: # Refuse a VENV built with another Python than PYTHON (e.g. a 3.11 .venv when PYTHON=python3.13)
	@want=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { echo "error: PYTHON=$(PYTHON) does not run"; exit 2; }; \
	if [ -x $(PY) ]; then have=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if [ "$$have" != "$$want" ]; then \
	    echo "error: $(VENV) runs Python $$have but PYTHON=$(PYTHON) is $$want: give VENV=.venv$$(echo $$want | tr -d .) (or remove $(VENV))"; exit 2; \
	  fi; fi

run: venv-check $(STAMP) ## Start two local System Log servers (two orgs), backfill 3 days of both into ./lake in one run, show the summary and DuckDB by org
	$(PY) -m devtools.demo --events $(EVENTS) --output $(LAKE)

run-streaming: venv-check $(STAMP) ## Tail the local System Log server for 2 minutes while it appends events, a line per window
	$(PY) -m devtools.demo --streaming --minutes 2 --output $(LAKE)-streaming

run-files: venv-check $(STAMP) ## Generate a sample export file and replay it into ./lake (the file source)
	$(PY) -m devtools.eventgen --events $(EVENTS) --output $(SAMPLE)
	$(BIN)/okta-personal-lake run --source=file --input=$(SAMPLE) --output=$(LAKE)
	$(BIN)/okta-personal-lake report $(LAKE)

backfill: venv-check $(STAMP) ## Backfill [SINCE, UNTIL) of ORG into LAKE on this machine (token in OKTA_API_TOKEN)
	@test -n "$(ORG)" -a -n "$(SINCE)" -a -n "$(UNTIL)" || { echo "usage: make backfill ORG=https://acme.okta.com SINCE=2026-11-01T00:00:00Z UNTIL=2026-11-02T00:00:00Z [LAKE=lake]"; exit 2; }
	$(PY) -m pipeline --source=okta --okta_org_url=$(ORG) --since=$(SINCE) --until=$(UNTIL) --output=$(LAKE)

coverage: venv-check $(STAMP) ## Which ranges of which org LAKE covers, its gaps and failed runs [SINCE=26h UNTIL=2h ORG=...]; exit 1 on a gap
	$(BIN)/okta-personal-lake coverage --output=$(LAKE) $(if $(ORG),--okta_org_url=$(ORG)) $(if $(SINCE),--since=$(SINCE)) $(if $(UNTIL),--until=$(UNTIL))

audit: venv-check $(STAMP) ## Is every event ORG (or ORGS=file) holds for the closed hours since SINCE in LAKE? [UNTIL=2h ARGS="--repair"]; exit 1 if not
	@test -n "$(ORG)$(ORGS)" -a -n "$(SINCE)" || { echo "usage: make audit ORG=https://acme.okta.com SINCE=26h [UNTIL=2h] [LAKE=lake] [ARGS=\"--repair --skip_clean\"] (token in OKTA_API_TOKEN)"; exit 2; }
	$(BIN)/okta-personal-lake audit --output=$(LAKE) $(if $(ORG),--okta_org_url=$(ORG)) $(if $(ORGS),--orgs=$(ORGS)) --since=$(SINCE) $(if $(UNTIL),--until=$(UNTIL)) $(ARGS)

maintain: venv-check $(STAMP) ## Compact, expire snapshots, remove orphans of TABLE (default okta.events) beside LAKE [ARGS="--iceberg_catalog=sql ..."]
	$(BIN)/okta-personal-lake maintain --output=$(LAKE) --iceberg_table=$(or $(TABLE),okta.events) $(ARGS)

template: ## Build the Flex Template image and spec (needs gcloud; PROJECT=p BUCKET=b [REGION=r])
	@test -n "$(PROJECT)" -a -n "$(BUCKET)" || { echo "usage: make template PROJECT=my-project BUCKET=my-bucket [REGION=us-central1]"; exit 2; }
	gcloud builds submit --project=$(PROJECT) --region=$(REGION) --tag=$(IMAGE) .
	gcloud dataflow flex-template build gs://$(BUCKET)/templates/okta-personal-lake.json \
	    --project=$(PROJECT) --image=$(IMAGE) --sdk-language=PYTHON --metadata-file=dataflow/metadata.json

test: venv-check $(STAMP) $(BQSTAMP) ## Run the whole test suite, unit and integration (offline)
	$(PY) -m pytest -n 2

test-fast: venv-check $(STAMP) ## Run the unit tests only (no servers, no subprocesses; well under a minute)
	$(PY) -m pytest tests/unit -q

docs: venv-check $(STAMP) $(DOCSTAMP) ## Check the generated reference pages, then build the docs site into site/ (strict: a broken link fails)
	$(PY) -m devtools.docgen --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: venv-check $(STAMP) ## Static checks (ruff)
	$(BIN)/ruff check .

format: venv-check $(STAMP) ## Format the code (ruff)
	$(BIN)/ruff format .

bench: venv-check $(STAMP) ## Pipeline vs plain pyarrow vs DuckDB, whole processes, inputs (a) (b) (c) of N events (default 1M)
	$(PY) -m bench.batch_throughput --events $(N)

bench-backfill: venv-check $(STAMP) ## Backfill events/min through a 120 requests/min limit (about 8 minutes)
	$(PY) -m bench.backfill_throughput

bench-orgs: venv-check $(STAMP) ## Three orgs in one backfill: each one's use of its own budget (about 4 minutes)
	$(PY) -m bench.orgs_budget

clean: ## Remove the sample, the lake, the docs site and build leftovers (keeps .venv)
	rm -rf $(LAKE) $(LAKE)-streaming $(LAKE)-streaming-cursor.json sample site .pytest_cache build *.egg-info

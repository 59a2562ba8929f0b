# The operator's commands. Every target takes ENV=<name> to read .env.<name>
# (e.g. make migrate ENV=prod); variables already in the environment win over the file.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_BIN ?= /usr/lib/postgresql/15/bin
ALEMBIC := $(BIN)/alembic
SQL_DIR := sql
ENV ?=
REV ?=
FROM ?=
ROWS ?= 1000000
export ENV PG_BIN

# Per-run settings for every command that reads them: X="prune=true purge_objects=true"
# becomes -x 'prune=true' -x 'purge_objects=true' (quoted, so a glob such as
# exclude=*.log reaches the setting unexpanded). Like -x on the command line, they win
# over the environment and the .env file.
X ?=
X_ARGS = $(foreach setting,$(X),-x '$(setting)')

.PHONY: help install test test-fast lint demo migrate plan verify catch-up sql sql-downgrade downgrade current \
	history check presync adopt-dev upgrade-dev adopt-target revision postgres-binaries bench \
	bench-rows bench-upload bench-rate-limit bench-cutover bench-backfill bench-online report

help:
	@echo "Every target takes ENV=<name> (reads .env.<name>); the ones marked [X] take"
	@echo "X=\"name=value ...\", each passed as -x name=value (e.g. X=\"purge_objects=true\")."
	@echo
	@echo "make demo                      the whole cutover and rollback on sample data"
	@echo "make test                      set up the virtualenv, lint, run the tests"
	@echo "make test-fast                 the tests that need no PostgreSQL or TOS server (seconds)"
	@echo "make lint                      ruff, the layer contracts, squawk on the revisions after 0004"
	@echo "make install                   the virtualenv in .venv (the other targets run it first)"
	@echo "make postgres-binaries         install postgresql-15 when its binaries are missing (as root)"
	@echo "make plan ENV=prod             [X] the whole cutover as a dry run: checks, findings, no change"
	@echo "make presync ENV=prod          [X] before the freeze: upload the files, then only what changed"
	@echo "make migrate ENV=prod          [X] alembic upgrade head against DATABASE_URL"
	@echo "make verify ENV=prod           [X] re-check a finished cutover; non-zero exit on any failure"
	@echo "make report ENV=prod           the latest run's HTML report page again (REPORT=x.json: that run's)"
	@echo "make catch-up ENV=prod         [X] copy the rows written to the dev file after the cutover's snapshot"
	@echo "make sql ENV=prod              [X] the SQL the target has yet to run, for review (FROM=rev without a database)"
	@echo "make sql-downgrade ENV=prod    [X] the downgrade SQL from the target's revision (to REV=x or base)"
	@echo "make downgrade ENV=prod REV=x  [X] roll back to revision x (e.g. REV=0001, REV=base)"
	@echo "make current ENV=prod          [X] where the database is (its revision)"
	@echo "make check ENV=prod            [X] alembic check: fails if the models and the database disagree"
	@echo "make history                   the revision chain, in the order it runs"
	@echo "make adopt-dev DEV_DB=./meeting_agent.db   stamp an existing dev file at the baseline"
	@echo "make adopt-target ENV=prod     stamp a target the app's create_all() made at the baseline"
	@echo "make upgrade-dev DEV_DB=./meeting_agent.db  upgrade the dev file to the schema head"
	@echo "make revision MSG='add x'      new schema revision (before the data steps until released)"
	@echo "make merge-heads MSG='join x'   after release: join two branches' heads with a merge revision"
	@echo "make bench                     bench-rows and bench-upload below"
	@echo "make bench-rows ROWS=1000000   time the row copy (and pgloader) on generated dev data"
	@echo "make bench-upload              time the file upload against a slow local TOS server"
	@echo "make bench-rate-limit          how closely STORAGE_RATE_LIMIT holds the upload rate"
	@echo "make bench-cutover             the freeze window, cold and after a presync (long: ~2 GiB)"
	@echo "make bench-backfill            a batched backfill of 1M audit_logs rows while the app writes"
	@echo "make bench-online              the app's waits while revisions run on a live table"
	@echo "make help                      this list"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The tests start their own PostgreSQL from these binaries; install them when absent.
postgres-binaries:
	@if [ ! -x "$(PG_BIN)/initdb" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "PostgreSQL 15 binaries not found in $(PG_BIN): install postgresql-15" >&2; \
			exit 1; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15; \
	fi

# ruff; the layers' contracts (pyproject.toml [tool.importlinter]); then the revisions: one
# chain with one head, and squawk and the project's own rules on the SQL of every revision
# after the cutover's own (.squawk.toml; devtools/lint_revisions.py): a finding is a FAILED
# line naming the revision file. All three run every time; lint fails after them if any did.
lint: install
	@failed=; \
	$(BIN)/ruff check . || failed="$$failed ruff"; \
	$(BIN)/lint-imports || failed="$$failed lint-imports"; \
	$(BIN)/python -m devtools.lint_revisions || failed="$$failed lint_revisions"; \
	if [ -n "$$failed" ]; then echo "make lint: failed:$$failed" >&2; exit 1; fi

test: install postgres-binaries lint
	$(BIN)/pytest

# The inner loop: every test not marked slow (no PostgreSQL, no TOS server, no command in a
# fresh interpreter; tests/conftest.py marks them). `make test` still runs everything.
test-fast: install
	$(BIN)/pytest -q -m "not slow"

migrate: install
	$(ALEMBIC) $(X_ARGS) upgrade head

# The whole cutover and its rollback on sample data, with a throwaway PostgreSQL and the
# local TOS server: nothing to configure.
demo: install postgres-binaries
	$(BIN)/python -m demo

# Before the freeze, while the app runs (as often as wanted): upload UPLOADS_DIR and record it,
# so that the cutover's files step moves only what changed since.
presync: install
	$(BIN)/python -m data_migrations.commands.presync $(X_ARGS)

# The whole chain as a dry run: every check and finding, then everything rolled back.
plan: install
	$(ALEMBIC) -x dry_run=true $(X_ARGS) upgrade head

verify: install
	$(BIN)/python -m data_migrations.commands.verify $(X_ARGS)

# After a cutover that ended NOT READY TO GO LIVE (exit 3), with the app's API and worker
# stopped: the rows written to the dev file after its snapshot; data_migrations/commands/catch_up.py.
catch-up: install
	$(BIN)/python -m data_migrations.commands.catch_up $(X_ARGS)

# Each run writes its report page beside its JSON report in REPORTS_DIR; this builds one again
# (the latest, or REPORT=<json>) in REPORT_LANGUAGE. See data_migrations/commands/report.py.
report: install
	$(BIN)/python -m data_migrations.commands.report $(REPORT)

# From the target's revision (its alembic_version; FROM=<rev> without a database), each
# revision with the SET lock_timeout lines make migrate runs; see
# data_migrations/commands/sql_review.py. A failure writes no file.
sql: install
	@$(BIN)/python -m data_migrations.commands.sql_review upgrade \
		--out $(SQL_DIR)/upgrade-$(or $(ENV),default).sql $(if $(FROM),--from $(FROM)) $(X_ARGS)

sql-downgrade: install
	@$(BIN)/python -m data_migrations.commands.sql_review downgrade \
		--out $(SQL_DIR)/downgrade-$(or $(ENV),default).sql $(if $(FROM),--from $(FROM)) \
		$(if $(REV),--to $(REV)) $(X_ARGS)

downgrade: install
	@if [ -z "$(REV)" ]; then echo "REV is not set: make downgrade ENV=... REV=<revision|base>" >&2; exit 2; fi
	$(ALEMBIC) $(X_ARGS) downgrade $(REV)

current: install
	$(ALEMBIC) $(X_ARGS) current --verbose

history: install
	$(ALEMBIC) history --verbose

check: install
	$(ALEMBIC) $(X_ARGS) check

adopt-dev: install
	@if [ -z "$(DEV_DB)" ]; then echo "DEV_DB is not set: make adopt-dev DEV_DB=./meeting_agent.db" >&2; exit 2; fi
	$(BIN)/python -m data_migrations.commands.adopt_dev sqlite:///$(DEV_DB)

adopt-target: install
	$(BIN)/python -m data_migrations.commands.adopt_target

# The dev file follows the schema head only (the revision the first data revision
# revises; head once alembic.ini's [cutover] says released): never the data steps.
upgrade-dev: install
	@if [ -z "$(DEV_DB)" ]; then echo "DEV_DB is not set: make upgrade-dev DEV_DB=./meeting_agent.db" >&2; exit 2; fi
	rev=$$($(BIN)/python -m devtools.revision dev-head) && \
		DATABASE_URL=sqlite:///$(DEV_DB) SOURCE_DATABASE_URL= $(ALEMBIC) upgrade $$rev

# A new schema revision, its id the UTC second it is written, placed before the data
# revisions until production has run them (alembic.ini's [cutover]; devtools/revision.py).
# Refused while the chain has two heads (two branches' revisions): make lint says how to
# join them, by hand or with make merge-heads.
revision: install
	@if [ -z "$(MSG)" ]; then echo "MSG is not set: make revision MSG='what it does'" >&2; exit 2; fi
	@$(BIN)/python -m devtools.revision new "$(MSG)"

# After the release: a revision that revises every head and does nothing (docs/runbook.md:
# "Two branches").
.PHONY: merge-heads
merge-heads: install
	@if [ -z "$(MSG)" ]; then echo "MSG is not set: make merge-heads MSG='join x and y'" >&2; exit 2; fi
	@$(BIN)/python -m devtools.revision merge "$(MSG)"

bench: bench-rows bench-upload

# A throwaway PostgreSQL and a generated dev database of ROWS rows; see bench/copy_rows.py.
bench-rows: install postgres-binaries
	$(BIN)/python -m bench.copy_rows --rows $(ROWS)

# The local TOS server with 20 ms per request; see bench/upload_files.py.
bench-upload: install postgres-binaries
	$(BIN)/python -m bench.upload_files

# A presync under STORAGE_RATE_LIMIT 5MB, 10MB, 20MB and none; see bench/rate_limit.py.
bench-rate-limit: install
	$(BIN)/python -m bench.rate_limit

# The freeze window of a whole cutover, cold and after a presync, on 200,000 rows and
# ~2 GiB of uploads; see bench/cutover.py. Not part of bench: it takes minutes.
bench-cutover: install postgres-binaries
	$(BIN)/python -m bench.cutover

# A batched backfill of ROWS audit_logs rows (data_migrations/online/backfill.py) while an
# app writer inserts and updates them: rows/s, and the writer's p50/p99/worst latency.
bench-backfill: install postgres-binaries
	$(BIN)/python -m bench.backfill --rows $(ROWS)

# Five revisions on a live table, default lock settings, beside a report and an app; bench/online.py.
bench-online: install postgres-binaries
	$(BIN)/python -m bench.online

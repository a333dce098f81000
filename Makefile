# Sluice: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: install up down status demo test test-unit lint bench lock clean airflow

install:            ## system packages (as root) and .venv from requirements.txt + constraints.txt
	bash scripts/install.sh

up: install         ## start the local stack (idempotent); prints the UI URL and login
	$(PY) scripts/stack up

down:               ## stop everything the local stack started
	@if [ -x $(PY) ]; then $(PY) scripts/stack down; else echo "nothing to stop (no .venv)"; fi

status:
	$(PY) scripts/stack status

demo: up            ## land demo data, run the example pipelines through the scheduler, print a summary
	$(PY) scripts/demo.py

test: install       ## isolated test stack (.sluice-test, own ports), the whole suite, then stop the stack
	bash scripts/test.sh

test-unit: install  ## unit tests only, no services
	$(PY) -m pytest tests/unit -q

lint: install       ## ruff, and the pipeline linter over config/pipelines
	.venv/bin/ruff check .
	PYTHONPATH=include $(PY) -m sluice lint

bench: up           ## benchmarks (minutes); see bench/README.md
	bash bench/run.sh

lock: install       ## regenerate constraints.txt from the working .venv
	{ echo '# Generated from a working install by `make lock` (uv pip freeze). Pins every transitive package.'; \
	  uv pip freeze -p $(PY); } > constraints.txt

airflow:            ## run the airflow CLI against the local stack: make airflow ARGS="dags list"
	bash scripts/airflow.sh $(ARGS)

clean: down
	rm -rf .sluice .sluice-test

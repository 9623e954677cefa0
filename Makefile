# The two commands a newcomer needs: `make run` and `make test`.
VENV := .venv
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run manage test lint install fuzz faults topology topology-ha chromium bench-smoke

# Each installs once, and again only when its requirements change; pip names each package as it goes.
# Bytecode is compiled as modules are first imported, not all of it at install time.
# `make run` needs the runtime alone; the tests and tools need requirements-dev.txt too.
$(STAMP): requirements.txt
	@echo "Installing requirements.txt into $(VENV) (once; about 20 s)"
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --no-compile --progress-bar off -r requirements.txt
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	@echo "Installing requirements-dev.txt into $(VENV) (once; about 30 s)"
	$(VENV)/bin/pip install --no-compile --progress-bar off -r requirements-dev.txt
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

run: $(STAMP)
	@bin/run

# A management command with the project's .venv and .env: make manage ARGS="createtoken admin@localhost"
manage: $(STAMP)
	@bin/manage $(ARGS)

test: $(DEV_STAMP) chromium
	$(VENV)/bin/pytest

# The browser tests (tests/browser/) drive Debian's Chromium.
chromium:
	@command -v chromium >/dev/null || { echo "Installing Chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fuzz: $(DEV_STAMP)
	bin/fuzz-schema

# Faults end to end: the real processes on a PostgreSQL and a Redis of the suite's own (docs/reliability.md).
faults: $(DEV_STAMP)
	$(VENV)/bin/pytest faults

topology: $(DEV_STAMP)
	$(VENV)/bin/python deploy/topology.py

# The topology with no single point of failure, broken three times under traffic (docs/reliability.md);
# needs nginx, redis-server, RabbitMQ (rabbitmqctl, as root) and PostgreSQL on 127.0.0.1. Not run by .ci/run.
topology-ha: $(DEV_STAMP)
	$(VENV)/bin/python deploy/topology_ha.py

# Every benchmark at a tiny size, its tables to var/bench-smoke/: proves they still run (the figures mean nothing).
bench-smoke: $(DEV_STAMP)
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/cache_http.py --seconds 1 --rate-seconds 1
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/metrics_cost.py --calls 1000
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/subscriptions_send.py --subscriptions 300 --events
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/jobs_dispatch.py --burst 200 --spread 50 \
		--spread-seconds 5 --kill 100 --baseline-seconds 2
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/jobs_queues.py --jobs 200 --queues 10 --rounds 1
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/topics_fanout.py --subscribers 5 --idle 100 --rates 50,400 --seconds 1
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/jobs_batch.py --jobs 20 --rounds 1
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/jobs_retention.py --jobs 2000 --batch 500 \
		--baseline-seconds 5 --orm-sample 500
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/dashboard.py --subscriptions 2000 --jobs 2000 --renders 3
	BENCH_RESULTS_DIR=var/bench-smoke $(VENV)/bin/python bench/upstream_import.py --subscriptions 2000 --messages 400

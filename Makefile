# The two commands: `make run` (the whole service on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WEB_PORT ?= 8000
SANDBOX_PORT ?= 8010
HOST ?= 127.0.0.1
export WEB_PORT SANDBOX_PORT HOST

.PHONY: install system-packages run test screenshots mutation lint format check-deploy bench bench-quick bench-admin clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# nginx, redis-server, docker-compose and wget for the end-to-end tests, chromium
# for the browser tests (apt, as root).
system-packages:
	@bin/install-system-packages

# The login, URLs and signed curl come last, once the web server and sandbox answer.
run: install
	DJANGO_DEBUG=true $(BIN)/python manage.py migrate --noinput --verbosity 0
	@DJANGO_DEBUG=true PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start & \
	DJANGO_DEBUG=true $(BIN)/python manage.py setup_demo --wait 60 \
		--web-url http://$(HOST):$(WEB_PORT) --sandbox-url http://$(HOST):$(SANDBOX_PORT); \
	wait

# In random order (pytest-randomly prints the seed; replay one with
# `pytest --randomly-seed=N`), with coverage and its floor ([tool.coverage] in pyproject.toml).
test: install system-packages lint
	$(BIN)/pytest --cov

# The README's screenshots (docs/screenshots/), taken by the browser tests.
screenshots: install system-packages
	SCREENSHOTS=1 $(BIN)/pytest tests/browser --no-cov -p no:randomly

# Mutation testing of the core ([tool.mutmut] in pyproject.toml), without the
# end-to-end tests; too slow for every run. Survivors that are equivalent are
# listed in tests/mutation_equivalents.toml. mutants/ is rebuilt: mutmut would
# keep stale copies of the modules it does not mutate.
mutation: install
	rm -rf mutants
	template=$$($(BIN)/python bin/test_database_template.py) && \
	TEST_DATABASE_TEMPLATE=$$template $(BIN)/mutmut run --max-children $(or $(JOBS),2); \
	status=$$?; $(BIN)/python bin/test_database_template.py --drop; exit $$status
	$(BIN)/python bin/mutation_report.py --fail-under 90

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-deploy: install
	DJANGO_SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	FIELD_ENCRYPTION_KEYS=$$($(BIN)/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	DJANGO_ALLOWED_HOSTS=example.com $(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf var staticfiles .pytest_cache .ruff_cache

# Every scenario of the performance issue in one run: one table of figures beside their
# targets, docs/bench/results.json and .png (docs/performance.md, "How to run"). PostgreSQL
# and Redis as DATABASE_URL / REDIS_URL name them (default: the local ones); the benchmark
# makes and drops databases of its own. PROFILES sizes the audience burst.
bench: install
	$(BIN)/python -m bench.run --profiles $(or $(PROFILES),100000)

# The same at small sizes, in about two minutes, into var/bench/quick/ (not docs/).
bench-quick: install
	$(BIN)/python -m bench.run --profiles 10000 --burst-runs 1 --scale-profiles 5000 --scale-runs 1 \
		--rounds 1 --seconds 3 --batches 10 --actions 2 --out var/bench/quick

# The audit log's pages at 1,000,000 events: PostgreSQL only (DATABASE_URL names the
# server; the benchmark creates a database of its own beside it).
bench-admin: install
	$(BIN)/python -m bench.admin_pages

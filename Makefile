# Two commands on a fresh machine: `make up` brings the demo stack up, `make test` runs the
# tests. Both install what they need first.
PYTHON := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: deps test unit integration lint bench up clean

deps:
	./scripts/install-deps.sh

test: deps
	$(PYTEST) -q -rs tests

unit: deps
	$(PYTEST) -q tests/unit

integration: deps
	$(PYTEST) -q -rs tests/integration

lint: deps
	.venv/bin/ruff check stackha tests

bench: deps
	$(PYTHON) -m bench

up: deps
	@echo "stackha up (the docker compose demo stack) is not built yet: see issue 7" >&2
	@exit 1

clean:
	rm -rf .venv .pytest_cache

# Two commands on a fresh machine: `make up` brings the demo stack up, `make test` runs the
# tests. Both install what they need first.
PYTHON := .venv/bin/python
PYTEST := .venv/bin/pytest
# The MyCat release the lab's MyCat nodes run (see README, "MyCat"): the shared copy next to
# the checkout when there is one; without it they run mycat-standin.
STACKHA_MYCAT_TARBALL ?= $(firstword $(wildcard ../shared/mycat/Mycat-server-*.tar.gz))
export STACKHA_MYCAT_TARBALL

.PHONY: deps test unit integration lint bench fidelity up down e2e clean

deps:
	./scripts/install-deps.sh

# The e2e tests run last, after the rest (they start dockerd); STACKHA_SKIP_E2E=1 leaves them out.
test: deps
	$(PYTEST) -q -rs tests/unit tests/integration
	@if [ "$${STACKHA_SKIP_E2E:-}" != 1 ]; then $(MAKE) --no-print-directory e2e; fi

unit: deps
	$(PYTEST) -q tests/unit

integration: deps
	$(PYTEST) -q -rs tests/integration

lint: deps
	.venv/bin/ruff check stackha tests bench testkit

bench: deps
	$(PYTHON) -m bench

# stackha's MyCat validator against the real MyCat 1.6.6.1: prints the agreement rate.
fidelity: deps
	$(PYTEST) -q -rs tests/integration/test_mycat_fidelity.py

# The compose lab: docker-setup.sh installs and starts the engine, the compose CLI and the
# locally made base image (no registry needed); `stackha up` builds the rest and starts it.
up: deps
	./scripts/docker-setup.sh
	.venv/bin/stackha up

down: deps
	.venv/bin/stackha down --volumes

# End-to-end tests against the lab (brought up if needed, taken down at the end), its MyCat
# nodes running the release in STACKHA_MYCAT_TARBALL (above: the shared copy when there is one;
# `make e2e STACKHA_MYCAT_TARBALL=` runs them on mycat-standin).
e2e: deps
	./scripts/docker-setup.sh
	STACKHA_E2E=1 $(PYTEST) -q -rs tests/e2e

clean:
	rm -rf .venv .pytest_cache

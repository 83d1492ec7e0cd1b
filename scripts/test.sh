#!/usr/bin/env bash
# The project's single test command (also what CI runs):
#   1. installs amqp-tools (amqp-publish / amqp-consume) if missing,
#   2. creates .venv and installs the pinned Python test dependencies,
#   3. checks formatting (cargo fmt --check) and lints (cargo clippy -D warnings),
#      builds the workspace and runs the Rust test suites (tests/layering.rs
#      among them: the layer rules of docs/ARCHITECTURE.md),
#   4. runs the Python interop suite (tests/python) against target/debug/warren.
# Extra arguments are passed to pytest, e.g. `scripts/test.sh -k topic`.
# Environment: PYTEST_WORKERS (default 4) sets pytest-xdist's worker count.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

# Always test the broker built here. An inherited WARREN_TEST_URL would point both suites at
# an external broker, where every test that needs its own broker process (durability,
# restarts, signals) can only skip.
unset WARREN_TEST_URL

section() { printf '\n==== %s ====\n' "$*"; }

# ---------------------------------------------------------------- amqp-tools
if ! command -v amqp-publish >/dev/null 2>&1 || ! command -v amqp-consume >/dev/null 2>&1; then
    section "installing amqp-tools"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends amqp-tools >/dev/null
fi

# ---------------------------------------------------------------- Python venv
section "python venv"
PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ] || ! "$PY" -c 'import sys' >/dev/null 2>&1; then
    rm -rf .venv
    if ! python3 -m venv .venv; then
        # Debian's python3 without python3-venv: fall back to virtualenv from PyPI.
        rm -rf .venv
        python3 -m pip install -q --disable-pip-version-check virtualenv
        python3 -m virtualenv -q .venv
    fi
fi
"$PY" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

# ---------------------------------------------------------------- Rust
section "cargo fmt --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo build --workspace"
cargo build --workspace

status=0

section "cargo test --workspace"
# tests/guest.rs makes network namespaces for a non-loopback client; as root (CI is) that must
# work, so a failure to make one fails those tests instead of skipping them.
if [ "$(id -u)" -eq 0 ]; then export WARREN_REQUIRE_NETNS=1; fi
cargo test --workspace || status=1

# ---------------------------------------------------------------- Python interop suite
section "pytest tests/python"
export WARREN_BIN="$ROOT/target/debug/warren"
export WARREN_REQUIRE_AMQP_TOOLS=1
"$PY" -m pytest tests/python -q -n "${PYTEST_WORKERS:-4}" "$@" || status=1

if [ "$status" -ne 0 ]; then
    section "FAILED"
else
    section "all tests passed"
fi
exit "$status"

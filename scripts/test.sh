#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one: installs what the
# tests need (Python validator, npm peer servers, nextest), makes sure
# Postgres and NATS run, then lints, type-checks and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools}
export MCPO_TOOLS_DIR=$TOOLS_DIR
step() { printf '\n== %s\n' "$*"; }

step "services: PostgreSQL and NATS"
bash scripts/start-services.sh

step "test tools: Python validator, npm peers, nextest"
if [ ! -x "$TOOLS_DIR/venv/bin/python" ]; then
  python3 -m venv "$TOOLS_DIR/venv"
fi
"$TOOLS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
(cd crates/test-support/peers && npm ci --no-audit --no-fund --loglevel=error)
if ! command -v cargo-nextest >/dev/null; then
  cargo install cargo-nextest --locked
fi

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
bash scripts/lint-deploy.sh

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

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
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for _ in $(seq 50); do
  pg_isready -q -h 127.0.0.1 -p 5432 && (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break
  sleep 0.2
done

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

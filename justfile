# Developer shortcuts; the README's two commands work without `just`.

# Run all services in one process (migrations applied), with the demo fixture registered.
up:
    MCPO_AUTH=disabled cargo run --release -p mcpo -- up --demo

# The whole test suite, exactly as CI runs it.
test:
    bash scripts/test.sh

# Apply migrations to $DATABASE_URL.
migrate:
    cargo run -p mcpo -- migrate

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    bash scripts/lint-deploy.sh

# Load test: the executor and mcpo (PyPI) in front of the fixture server, stdio
# and streamable HTTP, 1/16/64 connections (BENCH_SECONDS, BENCH_CONNECTIONS, … in scripts/bench.sh).
bench:
    bash scripts/bench.sh

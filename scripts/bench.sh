#!/usr/bin/env bash
# Load test of the tool executor against mcpo (PyPI), both in front of MCPO's
# fixture MCP server, on this machine, in one run (`just bench`).
#
# For each proxy (MCPO's `mcpo up`, and mcpo from PyPI), each transport to the
# fixture (stdio, streamable HTTP) and each connection count, `wrk` posts
# {"message":"hi"} to the `echo` tool: a warm-up, then a measured run. Printed:
# calls/s, p50/p99 latency, CPU time of the proxy process per call (utime +
# stime from /proc/PID/stat before and after the measured run, divided by the
# calls completed), each proxy's peak RSS (VmHWM), the MCPO/mcpo ratios, and
# the RSS of a fresh `mcpo up` with BENCH_SERVICES services registered.
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and NATS with
# JetStream on 127.0.0.1:4222 (started here like scripts/test.sh does if they
# are down), Python 3 and wrk (installed with apt-get when missing).
#
# Settings (environment):
#   BENCH_SECONDS       measured seconds per run (default 10)
#   BENCH_WARMUP        warm-up seconds before each run (default 2)
#   BENCH_CONNECTIONS   connection counts (default "1 16 64")
#   BENCH_TRANSPORTS    "stdio http" (default both)
#   BENCH_PYTHON_MCPO   1: also measure mcpo from PyPI (default 1)
#   BENCH_SERVICES      services registered for the RSS step, 0 skips it (default 100)
#   BENCH_OUT           also write the report (markdown) to this file
#   MCPO_BIN            use this mcpo binary instead of building it (release);
#                       the mcpo-executor binary is looked for beside it
#   MCPO_TOOLS_DIR      where the Python venv lives (default ~/.cache/mcpo-tools)
#   DATABASE_URL_BASE   server URL the bench databases are created on
#                       (default postgres://postgres@127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-"1 16 64"}
TRANSPORTS=${BENCH_TRANSPORTS:-"stdio http"}
WITH_PYTHON=${BENCH_PYTHON_MCPO:-1}
MANY_SERVICES=${BENCH_SERVICES:-100}
TOOLS_DIR=${MCPO_TOOLS_DIR:-$HOME/.cache/mcpo-tools}
DB_BASE=${DATABASE_URL_BASE:-postgres://postgres@127.0.0.1:5432}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
RUN_ID="bench_$$_$(date +%s)"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcpo-bench.XXXXXX")
PIDS=()
DATABASES=()

# Deletes a JetStream stream (each `mcpo up` here has its own, named like its
# database) through the JetStream API, with no NATS client installed.
delete_stream() {
  timeout 5 python3 - "$NATS_URL" "$1" <<'PY' >/dev/null 2>&1
import socket, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((url.hostname or "127.0.0.1", url.port or 4222), timeout=3)
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(("CONNECT {\"verbose\":false}\r\nSUB _INBOX.bench 1\r\n"
           f"PUB $JS.API.STREAM.DELETE.{sys.argv[2]} _INBOX.bench 0\r\n\r\n").encode())
while not f.readline().startswith(b"MSG"):
    pass
PY
}

cleanup() {
  local pid
  # Each process was started in a session of its own (setsid): its group
  # holds it and the MCP servers it spawned.
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  local db
  for db in "${DATABASES[@]}"; do
    psql "$DB_BASE/postgres" -q -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    delete_stream "$db" || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites -----------------------------------------------------------

log "prerequisites: PostgreSQL, NATS, wrk, mcpo (PyPI)"
bash scripts/start-services.sh
if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
if [ "$WITH_PYTHON" = 1 ]; then
  VENV="$TOOLS_DIR/bench-venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench-requirements.txt
fi

if [ -n "${MCPO_BIN:-}" ]; then
  BIN=$MCPO_BIN
else
  log "cargo build --release -p mcpo -p mcpo-executor"
  cargo build --release --locked -p mcpo -p mcpo-executor >&2
  BIN="${CARGO_TARGET_DIR:-target}/release/mcpo"
fi
BIN=$(realpath "$BIN")
[ -x "$BIN" ] || die "no mcpo binary at $BIN"
EXECUTOR_BIN="$(dirname "$BIN")/mcpo-executor"

# --- helpers -----------------------------------------------------------------

# N distinct free loopback ports.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# start NAME CMD...: runs CMD in a session of its own, output in $WORK/NAME.log;
# sets STARTED to its pid.
start() {
  local name=$1; shift
  setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  STARTED=$!
  PIDS+=("$STARTED")
}

show_log() { echo "--- $1 log (last 30 lines)" >&2; tail -n 30 "$WORK/$1.log" >&2 || true; }

# wait_ok NAME PID URL [BODY]: until URL answers 2xx (POST when BODY is given).
wait_ok() {
  local name=$1 pid=$2 url=$3 body=${4:-}
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || { show_log "$name"; die "$name exited"; }
    if [ -n "$body" ]; then
      curl -fsS -o /dev/null -X POST "$url" -H 'content-type: application/json' -d "$body" 2>/dev/null && return 0
    else
      curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  show_log "$name"
  die "$name: no 2xx from $url after 30 s"
}

# CPU seconds (utime + stime, this process only) as clock ticks.
cpu_ticks() {
  # Fields after the ")" closing comm: state is field 3, utime 14, stime 15.
  local rest
  rest=$(sed 's/^.*) //' "/proc/$1/stat")
  set -- $rest
  echo $(( ${12} + ${13} ))
}
CLK_TCK=$(getconf CLK_TCK)

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"message":"hi"}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
LUA

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# The fixture server behind PROXY_PID for TRANSPORT: the proxy's own child
# `fixture stdio`, or the one HTTP fixture every proxy shares.
fixture_pid() {
  case "$2" in
    stdio) pgrep -P "$1" -f 'fixture stdio' | head -n1 ;;
    *) echo "$FIX_PID" ;;
  esac
}

# measure PROXY TRANSPORT PID URL: warm-up and measured runs at each connection count.
measure() {
  local proxy=$1 transport=$2 pid=$3 url=$4 c threads before after out line
  local check server server_before server_after
  check=$(curl -sS -X POST "$url" -H 'content-type: application/json' -d '{"message":"hi"}' -w ' HTTP %{http_code}')
  case "$check" in *"HTTP 200") ;; *) die "$proxy/$transport: $url answered: $check" ;; esac
  for c in $CONNECTIONS; do
    threads=$(( c < 2 ? c : 2 ))
    log "$proxy $transport: $c connection(s), ${WARMUP}s warm-up + ${DURATION}s"
    wrk -t"$threads" -c"$c" -d"${WARMUP}s" --timeout 10s -s "$WORK/post.lua" "$url" >/dev/null
    server=$(fixture_pid "$pid" "$transport")
    [ -n "$server" ] || die "$proxy/$transport: no fixture server process found"
    server_before=$(cpu_ticks "$server")
    before=$(cpu_ticks "$pid")
    out=$(wrk -t"$threads" -c"$c" -d"${DURATION}s" --timeout 10s --latency -s "$WORK/post.lua" "$url")
    after=$(cpu_ticks "$pid")
    server_after=$(cpu_ticks "$server")
    line=$(grep '^BENCH ' <<<"$out") || { echo "$out" >&2; die "wrk printed no summary"; }
    # shellcheck disable=SC2046
    eval $(sed 's/^BENCH //' <<<"$line")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$proxy" "$transport" "$c" \
      "$requests" "$duration_us" "$p50_us" "$p99_us" "$non2xx" "$sockerr" "$((after - before))" \
      "$((server_after - server_before))" >>"$RESULTS"
  done
}

# --- MCPO --------------------------------------------------------------------

read -r REG_PORT EXE_PORT PUB_PORT FIX_PORT PY_PORT REG2_PORT EXE2_PORT PUB2_PORT EXE3_PORT <<<"$(free_ports 9)"

log "fixture over streamable HTTP on 127.0.0.1:$FIX_PORT"
start fixture-http "$BIN" fixture http --listen "127.0.0.1:$FIX_PORT"
FIX_PID=$STARTED
FIX_URL="http://127.0.0.1:$FIX_PORT/mcp"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$FIX_PORT") 2>/dev/null && break
  kill -0 "$FIX_PID" 2>/dev/null || { show_log fixture-http; die "the fixture exited"; }
  sleep 0.1
done

# start_mcpo NAME DB REG EXE PUB [--demo]: `mcpo up` with its own database and NATS stream.
start_mcpo() {
  local name=$1 db=$2 reg=$3 exe=$4 pub=$5; shift 5
  DATABASES+=("$db")
  start "$name" env \
    DATABASE_URL="$DB_BASE/$db" NATS_URL="$NATS_URL" \
    MCPO_NATS_PREFIX="$db" MCPO_NATS_STREAM="$db" \
    MCPO_REGISTRY_ADDR="127.0.0.1:$reg" MCPO_EXECUTOR_ADDR="127.0.0.1:$exe" \
    MCPO_PUBLISHER_ADDR="127.0.0.1:$pub" \
    MCPO_AUTH=disabled MCPO_EGRESS_ALLOW=127.0.0.1/32 MCPO_STATUS_INTERVAL_MS=0 \
    MCPO_LOG_FORMAT=json RUST_LOG=warn \
    "$BIN" up "$@"
  # env and setsid exec: the pid is mcpo's own.
  wait_ok "$name" "$STARTED" "http://127.0.0.1:$exe/healthz"
}

register() { # REGISTRY_PORT NAME URL
  local answer
  answer=$(curl -sS -X POST "http://127.0.0.1:$1/api/v1/mcpo/services" \
    -H 'content-type: application/json' \
    -d "{\"name\":\"$2\",\"transport\":{\"type\":\"streamable_http\",\"url\":\"$3\"}}" \
    -w '\nHTTP %{http_code}')
  case "$answer" in *"HTTP 201") ;; *) die "registering $2: $answer" ;; esac
}

log "MCPO: mcpo up --demo (release), database ${RUN_ID}"
start_mcpo mcpo-up "$RUN_ID" "$REG_PORT" "$EXE_PORT" "$PUB_PORT" --demo
MCPO_PID=$STARTED
wait_ok mcpo-up "$MCPO_PID" "http://127.0.0.1:$EXE_PORT/tools/demo/echo" '{"message":"hi"}'
register "$REG_PORT" web "$FIX_URL"
wait_ok mcpo-up "$MCPO_PID" "http://127.0.0.1:$EXE_PORT/tools/web/echo" '{"message":"hi"}'

# --- mcpo (PyPI) ---------------------------------------------------------------

if [ "$WITH_PYTHON" = 1 ]; then
  log "mcpo (PyPI) $("$VENV/bin/pip" show mcpo 2>/dev/null | awk '/^Version:/ {print $2}') on 127.0.0.1:$PY_PORT"
  cat >"$WORK/mcpo-config.json" <<JSON
{"mcpServers": {
  "demo": {"command": "$BIN", "args": ["fixture", "stdio"]},
  "web": {"type": "streamable-http", "url": "$FIX_URL"}
}}
JSON
  # LOG_LEVEL sets mcpo's and uvicorn's level: no access log line per request.
  start mcpo-py env LOG_LEVEL=WARNING "$VENV/bin/python" "$VENV/bin/mcpo" \
    --host 127.0.0.1 --port "$PY_PORT" --config "$WORK/mcpo-config.json"
  PY_PID=$STARTED
  wait_ok mcpo-py "$PY_PID" "http://127.0.0.1:$PY_PORT/demo/echo" '{"message":"hi"}'
  wait_ok mcpo-py "$PY_PID" "http://127.0.0.1:$PY_PORT/web/echo" '{"message":"hi"}'
fi

# --- load --------------------------------------------------------------------

# Interleaved, so both proxies see the machine in the same state.
for transport in $TRANSPORTS; do
  case "$transport" in stdio) svc=demo ;; http) svc=web ;; *) die "unknown transport $transport" ;; esac
  measure MCPO "$transport" "$MCPO_PID" "http://127.0.0.1:$EXE_PORT/tools/$svc/echo"
  if [ "$WITH_PYTHON" = 1 ]; then
    measure mcpo "$transport" "$PY_PID" "http://127.0.0.1:$PY_PORT/$svc/echo"
  fi
done
MCPO_HWM=$(status_kib "$MCPO_PID" VmHWM)
[ "$WITH_PYTHON" = 1 ] && PY_HWM=$(status_kib "$PY_PID" VmHWM)

# --- many services -----------------------------------------------------------

if [ "$MANY_SERVICES" -gt 0 ]; then
  log "RSS: a fresh mcpo up with $MANY_SERVICES services (the HTTP fixture, registered under as many names)"
  start_mcpo mcpo-many "${RUN_ID}_many" "$REG2_PORT" "$EXE2_PORT" "$PUB2_PORT"
  MANY_PID=$STARTED
  MANY_START_RSS=$(status_kib "$MANY_PID" VmRSS) MANY_START_THR=$(status_kib "$MANY_PID" Threads)
  for i in $(seq -f '%03g' 1 "$MANY_SERVICES"); do
    register "$REG2_PORT" "svc-$i" "$FIX_URL"
  done
  MANY_REG_RSS=$(status_kib "$MANY_PID" VmRSS) MANY_REG_THR=$(status_kib "$MANY_PID" Threads)
  # One call each: the executor opens a session per service on first use.
  for i in $(seq -f '%03g' 1 "$MANY_SERVICES"); do
    wait_ok mcpo-many "$MANY_PID" "http://127.0.0.1:$EXE2_PORT/tools/svc-$i/echo" '{"message":"hi"}'
  done
  MANY_CALLED_RSS=$(status_kib "$MANY_PID" VmRSS) MANY_CALLED_THR=$(status_kib "$MANY_PID" Threads)
  MANY_HWM=$(status_kib "$MANY_PID" VmHWM)
  # The executor as deployed: its own process (the issue's 64 MiB target is
  # the executor's), over the same database, one call to each service.
  if [ -x "$EXECUTOR_BIN" ]; then
    log "RSS: the executor alone (mcpo-executor) with the same $MANY_SERVICES services"
    start executor-alone env \
      DATABASE_URL="$DB_BASE/${RUN_ID}_many" NATS_URL="$NATS_URL" \
      MCPO_NATS_PREFIX="${RUN_ID}_many" MCPO_NATS_STREAM="${RUN_ID}_many" \
      MCPO_EXECUTOR_ADDR="127.0.0.1:$EXE3_PORT" \
      MCPO_AUTH=disabled MCPO_EGRESS_ALLOW=127.0.0.1/32 \
      MCPO_LOG_FORMAT=json RUST_LOG=warn "$EXECUTOR_BIN"
    ALONE_PID=$STARTED
    wait_ok executor-alone "$ALONE_PID" "http://127.0.0.1:$EXE3_PORT/healthz"
    ALONE_START_RSS=$(status_kib "$ALONE_PID" VmRSS)
    for i in $(seq -f '%03g' 1 "$MANY_SERVICES"); do
      wait_ok executor-alone "$ALONE_PID" "http://127.0.0.1:$EXE3_PORT/tools/svc-$i/echo" '{"message":"hi"}'
    done
    ALONE_CALLED_RSS=$(status_kib "$ALONE_PID" VmRSS) ALONE_CALLED_THR=$(status_kib "$ALONE_PID" Threads)
    ALONE_HWM=$(status_kib "$ALONE_PID" VmHWM)
  fi
fi

# --- report --------------------------------------------------------------------

mcpo_version() {
  if [ -n "${MCPO_BIN:-}" ]; then
    echo "the binary $BIN"
  elif git rev-parse --git-dir >/dev/null 2>&1; then
    echo "release build of $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' with uncommitted changes')"
  else
    echo "release build"
  fi
}

report() {
  echo "# MCPO benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
    "$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr);" \
    "load generator, proxies and fixture server all on it."
  echo "MCPO: \`mcpo up\` (registry, executor, publisher in one process), $(mcpo_version)."
  if [ "$WITH_PYTHON" = 1 ]; then
    echo "mcpo: $("$VENV/bin/pip" freeze 2>/dev/null | grep -E '^(mcpo|mcp|fastapi|uvicorn)==' | tr '\n' ' ')on $("$VENV/bin/python" --version)."
  fi
  echo "Load: $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}'), POST {\"message\":\"hi\"} to \`echo\`," \
    "${WARMUP} s warm-up then ${DURATION} s per run; threads = min(connections, 2)."
  echo "CPU/call: utime+stime of the proxy process alone (not the fixture server) over the measured run / calls;"
  echo "fixture CPU/call: the same for the fixture server process behind it (the HTTP fixture is one process shared by both proxies)."
  echo
  echo "| proxy | transport | conns | calls/s | p50 ms | p99 ms | CPU ms/call | fixture CPU ms/call | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' -v tck="$CLK_TCK" '{
    calls = $4 > 0 ? $4 : 1; rps = $4 / ($5 / 1e6)
    cpu = ($10 / tck) * 1000 / calls; server = ($11 / tck) * 1000 / calls
    printf "| %s | %s | %d | %.0f | %.2f | %.2f | %.3f | %.3f | %d |\n", $1, $2, $3, rps, $6 / 1000, $7 / 1000, cpu, server, $8 + $9
  }' "$RESULTS"
  echo
  printf 'Peak RSS (VmHWM) after the load: MCPO `mcpo up` %s MiB' "$(mib "$MCPO_HWM")"
  [ "$WITH_PYTHON" = 1 ] && printf '; mcpo (the Python process) %s MiB' "$(mib "$PY_HWM")"
  printf '.\n'
  if [ "$WITH_PYTHON" = 1 ]; then
    echo
    echo "## MCPO / mcpo"
    echo
    echo "| transport | conns | calls/s ratio (MCPO / mcpo) | CPU per call ratio (mcpo / MCPO) | p99 mcpo / MCPO |"
    echo "|---|---:|---:|---:|---:|"
    awk -F'\t' -v tck="$CLK_TCK" '
      { key = $2 "\t" $3; rps[$1, key] = $4 / ($5 / 1e6); cpu[$1, key] = $10 / ($4 > 0 ? $4 : 1); p99[$1, key] = $7
        if ($1 == "MCPO") order[++n] = key }
      END { for (i = 1; i <= n; i++) { k = order[i]; split(k, kk, "\t")
        if (!(("mcpo", k) in rps)) continue
        cr = cpu["MCPO", k] > 0 ? sprintf("%.1fx", cpu["mcpo", k] / cpu["MCPO", k]) : "n/a (no ticks)"
        printf "| %s | %d | %.1fx | %s | %.1fx |\n", kk[1], kk[2], rps["MCPO", k] / rps["mcpo", k], cr, p99["mcpo", k] / p99["MCPO", k] } }
    ' "$RESULTS"
  fi
  if [ "$MANY_SERVICES" -gt 0 ]; then
    echo
    echo "## RSS with $MANY_SERVICES services"
    echo
    echo "A fresh \`mcpo up\` (no demo), the HTTP fixture registered $MANY_SERVICES times under different names."
    echo "The process also runs the registry and the publisher, so this bounds the executor's share from above."
    echo
    echo "| when | RSS MiB | threads |"
    echo "|---|---:|---:|"
    echo "| started | $(mib "$MANY_START_RSS") | $MANY_START_THR |"
    echo "| $MANY_SERVICES services registered | $(mib "$MANY_REG_RSS") | $MANY_REG_THR |"
    echo "| after one call to each (a session open per service) | $(mib "$MANY_CALLED_RSS") | $MANY_CALLED_THR |"
    echo "| peak (VmHWM) | $(mib "$MANY_HWM") | |"
    if [ -n "${ALONE_PID:-}" ]; then
      echo
      echo "The executor alone (\`mcpo-executor\`, as deployed), started over the same $MANY_SERVICES services:"
      echo
      echo "| when | RSS MiB | threads |"
      echo "|---|---:|---:|"
      echo "| routes loaded | $(mib "$ALONE_START_RSS") | |"
      echo "| after one call to each | $(mib "$ALONE_CALLED_RSS") | $ALONE_CALLED_THR |"
      echo "| peak (VmHWM) | $(mib "$ALONE_HWM") | |"
    fi
  fi
}

if [ -n "${BENCH_OUT:-}" ]; then
  report | tee "$BENCH_OUT"
else
  report
fi

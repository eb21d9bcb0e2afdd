#!/usr/bin/env bash
# Starts PostgreSQL and NATS (with JetStream) when they are not running, and
# waits until both accept connections. Used by the test and bench scripts.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for _ in $(seq 50); do
  pg_isready -q -h 127.0.0.1 -p 5432 && (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && exit 0
  sleep 0.2
done
echo "start-services: PostgreSQL or NATS did not come up" >&2
exit 1

#!/usr/bin/env bash
# iocsim load against an iocd of its own (issue 13's figures): a broker of
# its own (deploy/mosquitto.conf's limits on IOC_BENCH_MQTT_PORT, default
# 1894), a fresh database (ioc_bench_load), iocd with its metrics on
# IOC_BENCH_METRICS_PORT (19494), then `iocsim load` with the arguments
# given, e.g.
#
#   bash deploy/bench/load.sh --runs 3 --phase-duration 15s --warmup 3s [--iocd-profile /tmp/iocd.pprof]
#
# PostgreSQL is measured as the backends of ioc_bench_load plus the
# server's shared processes (other databases' backends are other load).
# IOCD_BIN runs another iocd binary (to compare builds); IOC_BENCH_DB_SET
# sets parameters of the bench database (see below). Everything it
# started is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
mport=${IOC_BENCH_MQTT_PORT:-1894}
metrics=127.0.0.1:${IOC_BENCH_METRICS_PORT:-19494}
http=127.0.0.1:${IOC_BENCH_HTTP_PORT:-18494}
pg=${IOC_BENCH_PG:-postgres://ioc:ioc@127.0.0.1:5432}
shared="$(pwd)/../shared/data/hanoi"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
go build -o "$work/iocsim" ./cmd/iocsim
iocd=${IOCD_BIN:-}
if [ -z "$iocd" ]; then go build -o "$work/iocd" ./cmd/iocd; iocd="$work/iocd"; fi
sed "s/^listener 1884 127.0.0.1/listener $mport 127.0.0.1/" deploy/mosquitto.conf >"$work/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$mport) 2>/dev/null && break; sleep 0.1; done
psql "$pg/postgres?sslmode=disable" -qc "drop database if exists ioc_bench_load with (force)" -c "create database ioc_bench_load" 2>/dev/null
# IOC_BENCH_DB_SET="log_min_duration_statement=0 ..." sets these for the
# bench database's sessions (ALTER DATABASE ... SET), e.g. to log what
# iocd's transactions run on a short run.
for kv in ${IOC_BENCH_DB_SET:-}; do
  psql "$pg/postgres?sslmode=disable" -qc "alter database ioc_bench_load set ${kv%%=*} = '${kv#*=}'"
done
IOC_DATABASE_URL="$pg/ioc_bench_load?sslmode=disable" IOC_MQTT_URL="tcp://127.0.0.1:$mport" IOC_MQTT_CLIENT_ID="ioc-bench-load-$$" \
  IOC_HTTP_ADDR="$http" IOC_METRICS_ADDR="$metrics" IOC_AREAS_FILE="$shared/wards.geojson" IOC_CITY_FILE="$shared/city.geojson" \
  IOC_LOG_LEVEL=warn "$iocd" serve >"$work/iocd.log" 2>&1 &
ipid=$!
pids+=($ipid)
for _ in $(seq 1 300); do
  [ "$(curl -sf "http://$metrics/metrics" | awk '$1=="ioc_mqtt_subscribed"{print $2}')" = 1 ] && break
  sleep 0.1
done
"$work/iocsim" load --broker "tcp://127.0.0.1:$mport" --iocd-metrics "http://$metrics/metrics" --iocd-pid "$ipid" \
  --wards "$shared/wards.geojson" --postgres-db ioc_bench_load "$@"

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
# sets parameters of the bench database (lib.sh). Everything it
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
. deploy/bench/lib.sh
bench_mosquitto "$mport"
bench_database "$pg" ioc_bench_load
IOC_DATABASE_URL="$pg/ioc_bench_load?sslmode=disable" IOC_MQTT_URL="tcp://127.0.0.1:$mport" IOC_MQTT_CLIENT_ID="ioc-bench-load-$$" \
  IOC_HTTP_ADDR="$http" IOC_METRICS_ADDR="$metrics" IOC_AREAS_FILE="$shared/wards.geojson" IOC_CITY_FILE="$shared/city.geojson" \
  IOC_LOG_LEVEL=warn "$iocd" serve >"$work/iocd.log" 2>&1 &
ipid=$!
pids+=($ipid)
bench_wait_subscribed "$metrics"
rc=0
"$work/iocsim" load --broker "tcp://127.0.0.1:$mport" --iocd-metrics "http://$metrics/metrics" --iocd-pid "$ipid" \
  --wards "$shared/wards.geojson" --postgres-db ioc_bench_load "$@" || rc=$?
# iocd logs at warn: anything here (a lost broker connection, a failed
# batch) explains a run's odd figures.
grep -E 'level=(WARN|ERROR)' "$work/iocd.log" | grep -v -e 'first admin account' -e 'no webhook URL' >"$work/iocd.warn" || true
if [ -s "$work/iocd.warn" ]; then
  echo "iocd's warnings and errors (last 30):"
  tail -30 "$work/iocd.warn"
fi
exit $rc

#!/usr/bin/env bash
# iocd against Telegraf on one load (issue 13): the same publisher
# (iocsim run: N messages of the simulator's mix, QoS 1, 4 connections, as
# fast as the broker takes them) into iocd, then into Telegraf
# (inputs.mqtt_consumer → parsers.json_v2 → outputs.postgresql: one plain
# table, no validation, no geometry, no exactly-once), alternating, RUNS
# runs each, same broker, same PostgreSQL server, a fresh database per run.
# Prints one line per run and a table of medians: messages/s from the first
# publish to the last row committed, and CPU µs per message of the consumer
# and of the PostgreSQL backends serving it (from /proc, over that span).
#
# Telegraf is built once with only the plugins it needs
# (go install -tags custom,inputs.mqtt_consumer,outputs.postgresql,parsers.json_v2)
# into $IOC_BENCH_CACHE (default ~/.cache/ioc-bench), never into the repo.
#
# Environment: N (200000), RUNS (3), TELEGRAF_VERSION (v1.37.2),
# IOC_BENCH_MQTT_PORT (1893: a broker of its own, deploy/mosquitto.conf),
# IOC_BENCH_METRICS_PORT (19493), IOC_BENCH_HTTP_PORT (18493),
# IOC_BENCH_PG (postgres://ioc:ioc@127.0.0.1:5432), IOC_BENCH_ONLY (iocd or telegraf),
# IOCD_BIN (another iocd binary, to compare builds, as in load.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
export PATH="/usr/local/go/bin:$PATH"
N=${N:-200000}
RUNS=${RUNS:-3}
TELEGRAF_VERSION=${TELEGRAF_VERSION:-v1.37.2}
cache=${IOC_BENCH_CACHE:-$HOME/.cache/ioc-bench}
mport=${IOC_BENCH_MQTT_PORT:-1893}
metrics=127.0.0.1:${IOC_BENCH_METRICS_PORT:-19493}
http=127.0.0.1:${IOC_BENCH_HTTP_PORT:-18493}
pg=${IOC_BENCH_PG:-postgres://ioc:ioc@127.0.0.1:5432}
shared="$root/../shared/data/hanoi"
[ -f "$shared/wards.geojson" ] || { echo "telegraf.sh: $shared/wards.geojson not found (../shared beside the project)" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

telegraf="$cache/telegraf-$TELEGRAF_VERSION/telegraf"
if [ ! -x "$telegraf" ]; then
  echo "building Telegraf $TELEGRAF_VERSION (mqtt_consumer, json_v2, postgresql only) into $(dirname "$telegraf")" >&2
  GOBIN="$(dirname "$telegraf")" go install -tags custom,inputs.mqtt_consumer,outputs.postgresql,parsers.json_v2 \
    "github.com/influxdata/telegraf/cmd/telegraf@$TELEGRAF_VERSION"
fi
echo "building iocd and iocsim" >&2
iocd=${IOCD_BIN:-$work/iocd}
[ -n "${IOCD_BIN:-}" ] || go build -o "$iocd" ./cmd/iocd
go build -o "$work/iocsim" ./cmd/iocsim

# A broker of our own: deploy/mosquitto.conf's limits on another port.
. deploy/bench/lib.sh
bench_mosquitto "$mport"

psqlq() { PGAPPNAME=ioc-bench psql "$pg/${2:-postgres}?sslmode=disable" -Atqc "$1"; }

backends() { psqlq "select pid from pg_stat_activity where datname='$1' and coalesce(application_name, '') <> 'ioc-bench' and backend_type = 'client backend'" | tr '\n' ' '; }
hz=$(getconf CLK_TCK)
now() { date +%s.%N; }

# metric NAME: the sum of a counter over its labels from iocd's metrics.
metric() { curl -sf "http://$metrics/metrics" | awk -v m="$1" '$1==m || index($1, m"{")==1 {s+=$2} END {printf "%d\n", s}'; }

start_iocd() { # db run
  IOC_DATABASE_URL="$pg/$1?sslmode=disable" IOC_MQTT_URL="tcp://127.0.0.1:$mport" \
    IOC_MQTT_CLIENT_ID="ioc-bench-iocd-$2-$$" IOC_HTTP_ADDR="$http" IOC_METRICS_ADDR="$metrics" \
    IOC_AREAS_FILE="$shared/wards.geojson" IOC_CITY_FILE="$shared/city.geojson" IOC_LOG_LEVEL=warn \
    "$iocd" serve >"$work/iocd-$2.log" 2>&1 &
  cpid=$!
  for _ in $(seq 1 300); do
    [ "$(curl -sf "http://$metrics/metrics" | awk '$1=="ioc_mqtt_subscribed"{print $2}')" = 1 ] && return 0
    sleep 0.1
  done
  echo "iocd did not subscribe:" >&2; tail -20 "$work/iocd-$2.log" >&2; exit 1
}
done_iocd() { echo $(( $(metric ioc_ingest_committed_total) + $(metric ioc_ingest_rejected_total) + $(metric ioc_ingest_duplicates_total) )); }

start_telegraf() { # db run
  cat >"$work/telegraf-$2.conf" <<CONF
[agent]
  interval = "1s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 2000
  metric_buffer_limit = 200000
  omit_hostname = true
[[inputs.mqtt_consumer]]
  servers = ["tcp://127.0.0.1:$mport"]
  topics = ["city/#"]
  qos = 1
  client_id = "ioc-bench-telegraf-$2-$$"
  persistent_session = false
  max_undelivered_messages = 10000
  data_format = "json_v2"
  name_override = "telemetry"
  [[inputs.mqtt_consumer.json_v2]]
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "lat"
      type = "float"
      optional = true
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "lon"
      type = "float"
      optional = true
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "speed_kmh"
      type = "float"
      optional = true
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "volume"
      type = "int"
      optional = true
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "occupancy"
      type = "float"
      optional = true
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "id"
      type = "string"
      optional = true
[[outputs.postgresql]]
  connection = "$pg/$1?sslmode=disable"
CONF
  "$telegraf" --config "$work/telegraf-$2.conf" >"$work/telegraf-$2.log" 2>&1 &
  cpid=$!
  for _ in $(seq 1 300); do
    grep -q "Connected \[tcp://" "$work/telegraf-$2.log" && { sleep 0.5; return 0; }
    sleep 0.1
  done
  echo "Telegraf did not connect:" >&2; tail -20 "$work/telegraf-$2.log" >&2; exit 1
}
done_telegraf() { psqlq "select count(*) from telemetry" "$1" 2>/dev/null || echo 0; }

results="$work/results"
: >"$results"
for run in $(seq 1 "$RUNS"); do
  for who in iocd telegraf; do
    [ -n "${IOC_BENCH_ONLY:-}" ] && [ "$IOC_BENCH_ONLY" != "$who" ] && continue
    db="ioc_bench_$who"
    psqlq "drop database if exists $db with (force)" >/dev/null
    psqlq "create database $db" >/dev/null
    [ "$who" = telegraf ] || psqlq "create extension if not exists postgis" "$db" >/dev/null
    "start_$who" "$db" "$run"
    c0=$(ticks "$cpid"); pg_pids=$(backends "$db"); p0=$(ticks $pg_pids)
    t0=$(now)
    "$work/iocsim" --broker "tcp://127.0.0.1:$mport" --prefix city --rate 0 --conns 4 --count "$N" \
      --wards "$shared/wards.geojson" --progress 0 --run-id "b$run$who$$" >"$work/iocsim-$who-$run.log" 2>&1
    t_pub=$(now)
    deadline=$(( $(date +%s) + 300 ))
    while [ "$("done_$who" "$db")" -lt "$N" ]; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "$who run $run: not done after 300 s" >&2; break; }
      sleep 0.1
    done
    t1=$(now)
    pg_pids="$pg_pids $(backends "$db")"
    c1=$(ticks "$cpid"); p1=$(ticks $(echo "$pg_pids" | tr ' ' '\n' | sort -u))
    got=$("done_$who" "$db")
    kill "$cpid"; wait "$cpid" 2>/dev/null || true
    awk -v who="$who" -v run="$run" -v n="$N" -v got="$got" -v t0="$t0" -v tp="$t_pub" -v t1="$t1" \
        -v c="$((c1 - c0))" -v p="$((p1 - p0))" -v hz="$hz" 'BEGIN {
      d = t1 - t0
      printf "%s %d %.0f %.1f %.1f %.2f %d\n", who, run, got / d, c / hz * 1e6 / got, p / hz * 1e6 / got, t1 - tp, got
    }' | tee -a "$results" >&2
  done
done

echo
echo "iocd vs Telegraf $TELEGRAF_VERSION: $N messages per run (iocsim run --rate 0 --conns 4, QoS 1), $RUNS runs each, alternating; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{ k = $1; n[k]++; r[k, n[k]] = $3; c[k, n[k]] = $4; p[k, n[k]] = $5; runs[k] = runs[k] sprintf(" %s", $3) }
END {
  printf "%-9s %10s %22s %14s %14s %14s\n", "consumer", "msgs/s", "runs", "consumer µs/msg", "postgres µs/msg", "together"
  for (k in n) {
    for (i = 1; i <= n[k]; i++) { a[i] = r[k, i]; b[i] = c[k, i]; d[i] = p[k, i]; e[i] = c[k, i] + p[k, i] }
    m[k] = med(a, n[k])
    printf "%-9s %10.0f %22s %15.1f %15.1f %14.1f\n", k, m[k], runs[k], med(b, n[k]), med(d, n[k]), med(e, n[k])
  }
  if (m["telegraf"] > 0 && m["iocd"] > 0) printf "iocd / Telegraf: %.2f×\n", m["iocd"] / m["telegraf"]
}' "$results"

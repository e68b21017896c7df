#!/usr/bin/env bash
# iocsim ws against an iocd of its own (issue 10's figures): a broker of its
# own (deploy/mosquitto.conf's limits on IOC_BENCH_MQTT_PORT, default 1895), a
# fresh database (ioc_bench_ws), iocd on IOC_BENCH_HTTP_PORT (18495), the
# simulator feeding SIM_RATE messages/s (default 10000) from 10,000 devices and
# 300 units, then `iocsim ws` with the arguments given, e.g.
#
#   bash deploy/bench/ws.sh --clients 5000 --duration 30s --signal-rate 2 --dialers 32 --batch
#
# For the memory per idle connection past one process's open-file limit,
# IDLE_FIRST=N first holds N idle connections from another process, e.g.
#
#   SIM_RATE=10000 IDLE_FIRST=9750 bash deploy/bench/ws.sh --clients 0 --idle 9750 --settle 30s
#
# IOCD_BIN runs another iocd binary (to compare builds, run them in turn);
# IOCD_CPUPROFILE=FILE saves a 20 s CPU profile of iocd taken mid-run. Each
# run prints, after iocsim ws's report, the CPU each process used during the
# run (from /proc, in seconds). Everything it started is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
mport=${IOC_BENCH_MQTT_PORT:-1895}
hport=${IOC_BENCH_HTTP_PORT:-18495}
metrics=127.0.0.1:${IOC_BENCH_METRICS_PORT:-19495}
pg=${IOC_BENCH_PG:-postgres://ioc:ioc@127.0.0.1:5432}
rate=${SIM_RATE:-10000}
shared="$(pwd)/../shared/data/hanoi"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
go build -o "$work/iocsim" ./cmd/iocsim
iocd=${IOCD_BIN:-}
if [ -z "$iocd" ]; then go build -o "$work/iocd" ./cmd/iocd; iocd="$work/iocd"; fi
. deploy/bench/lib.sh
bench_mosquitto "$mport"
bench_database "$pg" ioc_bench_ws
password=bench-$$-$RANDOM
printf '%s\n' "$password" >"$work/admin.pw"
IOC_DATABASE_URL="$pg/ioc_bench_ws?sslmode=disable" IOC_MQTT_URL="tcp://127.0.0.1:$mport" IOC_MQTT_CLIENT_ID="ioc-bench-ws-$$" \
  IOC_HTTP_ADDR="127.0.0.1:$hport" IOC_METRICS_ADDR="$metrics" IOC_AREAS_FILE="$shared/wards.geojson" IOC_CITY_FILE="$shared/city.geojson" \
  IOC_BOOTSTRAP_ADMIN_PASSWORD_FILE="$work/admin.pw" IOC_LOG_LEVEL=warn "$iocd" serve >"$work/iocd.log" 2>&1 &
ipid=$!
pids+=($ipid)
bench_wait_subscribed "$metrics"
"$work/iocsim" --broker "tcp://127.0.0.1:$mport" --sensors 9700 --cameras 300 --units 300 --interval 6s --rate "$rate" \
  >"$work/sim.log" 2>&1 &
spid=$!
pids+=($spid)
sleep 8 # every device reports once: the wards layer has them
pgcpu() { ticks $(pgrep -x postgres); } # every postgres process of the server (the bench database's and the shared ones)
if [ -n "${IDLE_FIRST:-}" ]; then
  # Connections held by a process of their own first (one process may open
  # only so many files), so that the measured run adds its own on top.
  IOC_PASSWORD="$password" "$work/iocsim" ws --url "http://127.0.0.1:$hport" --broker "tcp://127.0.0.1:$mport" \
    --clients 0 --idle "$IDLE_FIRST" --hold 30m --settle 10s --dialers 32 >"$work/idle-first.txt" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do grep -q "per idle connection" "$work/idle-first.txt" && break; sleep 0.5; done
  echo "first $IDLE_FIRST idle connections (another process): $(grep "per idle connection" "$work/idle-first.txt")"
fi
before=("$(ticks "$ipid")" "$(pgcpu)" "$(ticks "$mpid")" "$(ticks "$spid")")
if [ -n "${IOCD_CPUPROFILE:-}" ]; then
  (sleep 15 && curl -sf -o "$IOCD_CPUPROFILE" "http://$metrics/debug/pprof/profile?seconds=20") &
fi
start=$(date +%s.%N)
TIMEFORMAT='%U %S'
{ time IOC_PASSWORD="$password" "$work/iocsim" ws --url "http://127.0.0.1:$hport" \
  --broker "tcp://127.0.0.1:$mport" "$@" 2>&3; } 3>&2 2>"$work/ws.time"
end=$(date +%s.%N)
after=("$(ticks "$ipid")" "$(pgcpu)" "$(ticks "$mpid")" "$(ticks "$spid")")
hz=$(getconf CLK_TCK)
awk -v hz="$hz" -v s="$start" -v e="$end" -v i0="${before[0]}" -v i1="${after[0]}" -v p0="${before[1]}" -v p1="${after[1]}" \
  -v m0="${before[2]}" -v m1="${after[2]}" -v s0="${before[3]}" -v s1="${after[3]}" -v ws="$(awk '{print $1+$2}' "$work/ws.time")" \
  'BEGIN { printf "CPU during the run (%.0f s): iocd %.1f s, postgres %.1f s, mosquitto %.1f s, simulator %.1f s, iocsim ws %.1f s\n",
    e-s, (i1-i0)/hz, (p1-p0)/hz, (m1-m0)/hz, (s1-s0)/hz, ws }'

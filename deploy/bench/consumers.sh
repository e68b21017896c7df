#!/usr/bin/env bash
# The broker alone with K QoS 1 consumer connections (mosquitto_sub, one
# $share group) while iocsim publishes N messages on 4 connections; prints
# how long publishing took, how long the broker then took to complete
# everything (deliver it and read its acknowledgements: its store back to
# empty), and the rate that makes. Mosquitto 2.0 reads
# one packet per connection per pass of its loop, so a single consumer
# falls behind on its PUBACKs (docs/ingest.md, issue 13 seventh sitting).
#
#   bash deploy/bench/consumers.sh K [N]      (N: 3000000)
#
# Run K=1 and K=2 alternately to compare; the broker is its own
# (deploy/mosquitto.conf's limits on IOC_BENCH_MQTT_PORT, default 1895).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
k=${1:?usage: consumers.sh K [N]}
n=${2:-3000000}
mport=${IOC_BENCH_MQTT_PORT:-1895}
shared="$(pwd)/../shared/data/hanoi"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
go build -o "$work/iocsim" ./cmd/iocsim
# deploy/mosquitto.conf's limits, with $SYS every second to see the
# store drain.
. deploy/bench/lib.sh
bench_mosquitto "$mport" -e 's/^sys_interval .*/sys_interval 1/'
mosquitto_sub -h 127.0.0.1 -p "$mport" -F '%U %t %p' -t '$SYS/broker/store/messages/count' \
  -t '$SYS/broker/publish/messages/dropped' >"$work/sys.log" &
pids+=($!)
for i in $(seq 1 "$k"); do
  mosquitto_sub -h 127.0.0.1 -p "$mport" -q 1 -i "consumer-$i-$$" -t '$share/bench/city/#' >/dev/null &
  pids+=($!)
done
sleep 1
t0=$(date +%s.%N)
"$work/iocsim" --broker "tcp://127.0.0.1:$mport" --prefix city --rate 0 --conns 4 --count "$n" \
  --wards "$shared/wards.geojson" --progress 0 --run-id "consumers$k$$" >"$work/iocsim.log" 2>&1
t1=$(date +%s.%N)
# Done when the store is back to what it held before publishing (a few
# retained $SYS messages): give it 300 s.
base=$(awk '$2~/count$/{print $3; exit}' "$work/sys.log")
t2=""
for _ in $(seq 1 300); do
  last=$(awk '$2~/count$/{v=$3; t=$1} END{print t, v}' "$work/sys.log")
  if [ "${last#* }" -le $((base + 100)) ] && [ "$(echo "${last% *} > $t1" | bc)" = 1 ]; then t2=${last% *}; break; fi
  sleep 1
done
held=$(awk -v t1="$t1" '$2~/count$/ && $1<=t1 {v=$3} END{print v}' "$work/sys.log")
dropped=$(awk '$2~/dropped$/{v=$3} END{print v+0}' "$work/sys.log")
awk -v k="$k" -v n="$n" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v held="$held" -v dropped="$dropped" -v la="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  s = t1 - t0
  if (t2 == "") { done = "not within 300 s"; rate = "-" } else { done = sprintf("%.1f s later", t2 - t1); rate = sprintf("%.0f", n / (t2 - t0)) }
  printf "consumers %d: %d messages published in %.1f s (%.0f/s), the broker holding %s at the end; completed %s: %s/s; dropped %s; load %s\n",
    k, n, s, n / s, held, done, rate, dropped, la
}'

#!/usr/bin/env bash
# Runs the operations centre on this machine with simulated Hanoi telemetry:
# installs and starts what is missing (deploy/setup.sh), starts the
# project's Mosquitto on 127.0.0.1:1884, creates the database, builds and
# starts iocd on :8080 and the simulator, and says where to look. Ctrl-C
# stops iocd and the simulator (PostgreSQL, Redis and the broker stay up).
#
# Environment: IOC_SIM_RATE (messages/s, default: the devices' own
# schedules), IOC_SIM_ARGS (more iocsim flags), IOC_HTTP_ADDR (default :8080).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash deploy/setup.sh
export PATH="/usr/local/go/bin:$PATH"
mkdir -p var bin

shared="$root/../shared/data/hanoi"
[ -f "$shared/wards.geojson" ] || { echo "run: $shared/wards.geojson not found (../shared beside the project)"; exit 1; }

# The project's broker, with its queue and in-flight limits.
if ! (exec 3<>/dev/tcp/127.0.0.1/1884) 2>/dev/null; then
  echo "run: starting Mosquitto on 127.0.0.1:1884 (deploy/mosquitto.conf)"
  mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  "$mosq" -c deploy/mosquitto.conf >var/mosquitto.log 2>&1 &
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/1884) 2>/dev/null && break; sleep 0.1; done
fi

export PGPASSWORD=ioc
psql -h 127.0.0.1 -U ioc -d postgres -Atqc "select 1 from pg_database where datname='ioc'" | grep -q 1 ||
  psql -h 127.0.0.1 -U ioc -d postgres -qc "create database ioc"

# The first admin's password: generated once, kept in var/ (mode 600).
if [ ! -s var/admin-password ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > var/admin-password)
fi

echo "run: building"
go build -o bin/iocd ./cmd/iocd
go build -o bin/iocsim ./cmd/iocsim

# Loopback: TLS would only cost CPU. Across a network use sslmode=verify-full.
export IOC_DATABASE_URL="postgres://ioc:ioc@127.0.0.1:5432/ioc?sslmode=disable"
export IOC_MQTT_URL="tcp://127.0.0.1:1884"
export IOC_AREAS_FILE="$shared/wards.geojson"
export IOC_CITY_FILE="$shared/city.geojson"
export IOC_HTTP_ADDR="${IOC_HTTP_ADDR:-:8080}"
export IOC_METRICS_ADDR="${IOC_METRICS_ADDR:-127.0.0.1:9464}"
export IOC_BOOTSTRAP_ADMIN_PASSWORD_FILE="$root/var/admin-password"
export IOC_MQTT_CLIENT_ID="iocd-quickstart"

bin/iocd serve >var/iocd.log 2>&1 &
iocd=$!
trap 'kill $iocd $sim 2>/dev/null; wait 2>/dev/null; echo; echo "run: stopped (logs in var/)"' EXIT INT TERM
port=${IOC_HTTP_ADDR##*:}
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { echo "run: iocd did not start:"; tail -20 var/iocd.log; exit 1; }

rate_flag=()
[ -n "${IOC_SIM_RATE:-}" ] && rate_flag=(--rate "$IOC_SIM_RATE")
bin/iocsim --broker tcp://127.0.0.1:1884 --wards "$shared/wards.geojson" --scenarios all \
  --truth var/truth.jsonl --bad-ratio 0.005 --progress 10s "${rate_flag[@]}" ${IOC_SIM_ARGS:-} 2>var/iocsim.log &
sim=$!

cat <<MSG

  Hanoi operations centre is running.

  API          http://127.0.0.1:$port/api/v1/   (sign in: admin / $(cat var/admin-password))
               TOKEN=\$(curl -s localhost:$port/api/v1/login -H 'Content-Type: application/json' -d '{"name":"admin","password":"$(cat var/admin-password)"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
               curl -H "Authorization: Bearer \$TOKEN" localhost:$port/api/v1/devices?limit=5
               curl -H "Authorization: Bearer \$TOKEN" localhost:$port/api/v1/incidents
  Incidents    the simulator stages an accident at ~3 min, a fire at ~5 min and a congestion
               from ~1 min (open once held 5 min); ground truth in var/truth.jsonl
  Metrics      http://$IOC_METRICS_ADDR/metrics
  Logs         var/iocd.log, var/iocsim.log
  Database     psql postgres://ioc:ioc@127.0.0.1:5432/ioc

  Ctrl-C to stop.
MSG
wait $iocd

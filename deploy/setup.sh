#!/usr/bin/env bash
# Installs (from Debian's packages) and starts what the operations centre
# needs on this machine: PostgreSQL 15 with PostGIS, Redis, Mosquitto, and a
# PostgreSQL role for the project. Idempotent: installs only what is
# missing, starts only what is stopped. Run as root (or with sudo).
#
# After it: postgres://ioc:ioc@127.0.0.1:5432 is a superuser role (it
# creates test databases and the PostGIS extension; production uses a
# narrower owner, see docs/operations.md).
set -euo pipefail

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- packages ---------------------------------------------------------------
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# nats-server: the durable broker tier (deploy/nats, docs/operations.md) and
# the fault suite (sim/faults) run it on their own ports; it is not started here.
for p in postgresql-15 postgresql-15-postgis-3 postgresql-client-15 redis-server mosquitto mosquitto-clients nats-server libxml2-utils curl ca-certificates procps; do
  have_pkg "$p" || need+=("$p")
done
# GDAL's ogrinfo reads the OGC API in the tests (cmd/iocd TestOGCWithGDAL).
have_pkg gdal-bin || need+=(gdal-bin)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi

# --- Go -----------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    log "Go is not installed: install Go 1.26 or newer (https://go.dev/doc/install) and run this again"
    exit 1
  fi
fi

# --- PostgreSQL -------------------------------------------------------------
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_ready; then
  ver=15
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
    log "creating PostgreSQL cluster $ver/main"
    $SUDO pg_createcluster "$ver" main >/dev/null
  fi
  log "starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 50); do pg_ready && break; sleep 0.2; done
  pg_ready || { log "PostgreSQL did not start"; exit 1; }
fi
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else $SUDO runuser -u postgres -- "$@"; fi
}
if ! PGPASSWORD=ioc psql -h 127.0.0.1 -U ioc -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  log "creating PostgreSQL role ioc"
  as_postgres psql -q -d postgres -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ioc') THEN
        CREATE ROLE ioc LOGIN SUPERUSER PASSWORD 'ioc';
      ELSE
        ALTER ROLE ioc LOGIN SUPERUSER PASSWORD 'ioc';
      END IF; END \$\$;"
fi

# --- Redis ------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ioc.log
fi

# --- Dashboard toolchain (dashboards/web): node and npm build and check the
# bundle, Debian's chromium runs the browser tests. A node already on the
# machine is used as it is (the build needs node 18 or newer).
dash_need=()
command -v node >/dev/null 2>&1 || dash_need+=(nodejs)
command -v npm >/dev/null 2>&1 || dash_need+=(npm)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || dash_need+=(chromium)
if [ ${#dash_need[@]} -gt 0 ]; then
  log "installing ${dash_need[*]} (dashboard build and browser tests)"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${dash_need[@]}" >/dev/null
fi

# Mosquitto is started by the project itself with deploy/mosquitto.conf:
# tests start their own on free ports (deploy/brokertest), deploy/run.sh one
# on 127.0.0.1:1884. A system broker on 1883, if any, is left alone.
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { log "mosquitto missing"; exit 1; }
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || { log "nats-server missing"; exit 1; }
log "ready: PostgreSQL $(psql -h 127.0.0.1 -U ioc -d postgres -Atc 'show server_version' 2>/dev/null | cut -d' ' -f1) with PostGIS, Redis, Mosquitto, NATS $(nats-server --version 2>/dev/null | awk '{print $2}'), $(go version | cut -d' ' -f3)"

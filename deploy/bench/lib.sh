# What the bench scripts (load.sh, ws.sh, telegraf.sh) share. Source it
# from the project root after `work` (a scratch directory) and `pids` (what
# the script's trap stops at the end) are set.

# bench_mosquitto PORT [SED-ARGS...]: a broker of the script's own, deploy/mosquitto.conf's
# limits on PORT (SED-ARGS, e.g. -e 's/^sys_interval .*/sys_interval 1/', change
# the copy); returns once it accepts connections. Its pid is in mpid.
bench_mosquitto() {
  local port=$1
  shift
  sed -e "s/^listener 1884 127.0.0.1/listener $port 127.0.0.1/" "$@" deploy/mosquitto.conf >"$work/mosquitto.conf"
  "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  mpid=$!
  pids+=($mpid)
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
}

# bench_database SERVER NAME: a fresh database NAME on SERVER
# (postgres://user:pass@host:port). IOC_BENCH_DB_SET="k=v ..." sets these
# for its sessions (ALTER DATABASE ... SET), e.g.
# log_min_duration_statement=0 to log what iocd's transactions run.
bench_database() {
  psql "$1/postgres?sslmode=disable" -qc "drop database if exists $2 with (force)" -c "create database $2" 2>/dev/null
  local kv
  for kv in ${IOC_BENCH_DB_SET:-}; do
    psql "$1/postgres?sslmode=disable" -qc "alter database $2 set ${kv%%=*} = '${kv#*=}'"
  done
}

# bench_wait_subscribed HOST:PORT: until the iocd with its metrics there has
# its MQTT subscription (at most 30 s).
bench_wait_subscribed() {
  for _ in $(seq 1 300); do
    [ "$(curl -sf "http://$1/metrics" | awk '$1=="ioc_mqtt_subscribed"{print $2}')" = 1 ] && return
    sleep 0.1
  done
}

# ticks PID...: their CPU time (user + system, clock ticks) from /proc;
# a pid that is gone counts 0.
ticks() {
  local sum=0 p f
  for p in "$@"; do
    f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    sum=$((sum + ${f% *} + ${f#* }))
  done
  echo $sum
}

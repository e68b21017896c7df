#!/usr/bin/env bash
# The test suite: installs and starts what is missing (deploy/setup.sh),
# then vet, formatting, the tests with the race detector against the real
# PostgreSQL/PostGIS, Redis and Mosquitto, and a short run of every fuzz
# target. Set IOC_FUZZTIME=0 to skip fuzzing, IOC_TEST_LOG=1 for logs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export PATH="/usr/local/go/bin:$PATH"
export IOC_TEST_DATABASE_URL="${IOC_TEST_DATABASE_URL:-postgres://ioc:ioc@127.0.0.1:5432/postgres}"
export IOC_TEST_REDIS_URL="${IOC_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"

echo "== go vet"
go vet ./...
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== dashboard bundle (dashboards/web/dist built from the sources)"
(cd dashboards/web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs --check)

echo "== go test -race"
go test -race -count=1 -timeout 18m ./...

# The control-room app in Debian's chromium against a real iocd, broker and
# simulator (dashboards/web/e2e/run.mjs, about 1.5 min on a quiet machine).
# IOC_E2E=0 skips it; IOC_E2E_STRICT=0 reports a failure without failing
# the suite (for a machine too loaded for its waits).
if [ "${IOC_E2E:-1}" != "0" ]; then
  echo "== dashboard browser tests"
  mkdir -p bin
  go build -o bin/iocd ./cmd/iocd
  go build -o bin/iocsim ./cmd/iocsim
  if (cd dashboards/web && IOC_E2E_IOCD="$PWD/../../bin/iocd" IOC_E2E_IOCSIM="$PWD/../../bin/iocsim" \
      IOC_SHARED_DATA="${IOC_SHARED_DATA:-$PWD/../../../shared/data/hanoi}" timeout 600 node --test-reporter=spec e2e/run.mjs); then
    echo "dashboard browser tests passed"
  elif [ "${IOC_E2E_STRICT:-1}" = "0" ]; then
    echo "dashboard browser tests FAILED (not fatal: IOC_E2E_STRICT=0)"
  else
    exit 1
  fi
fi

# fuzz_one runs one fuzz target. Go 1.26's fuzz coordinator can fail a run
# with "context deadline exceeded" at the -fuzztime boundary on a loaded
# machine, having found nothing (golang/go#75804, fixed in Go 1.27). A failure
# that wrote no new input under testdata/fuzz/TARGET and says exactly that is
# that race: run the target once more, and only warn if the race repeats. Any
# other failure, or a written crasher, fails the suite.
fuzz_one() {
  local pkg=$1 dir=$2 target=$3 try out before after
  for try in 1 2; do
    before=$(ls "$dir/testdata/fuzz/$target" 2>/dev/null | sort || true)
    out=$(mktemp)
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" = 0 ]; then
      rm -f "$out"
      return 0
    fi
    after=$(ls "$dir/testdata/fuzz/$target" 2>/dev/null | sort || true)
    if [ "$before" != "$after" ] || ! grep -q '^    context deadline exceeded$' "$out"; then
      rm -f "$out"
      return 1
    fi
    rm -f "$out"
    echo "-- $target: coordinator deadline race (golang/go#75804), no input written; try $try"
  done
  echo "-- $target: WARNING: the deadline race twice in a row; nothing was found"
}

fuzztime="${IOC_FUZZTIME:-15s}"
if [ "$fuzztime" != "0" ]; then
  echo "== fuzz ($fuzztime each)"
  for pkg in $(go list ./...); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
      echo "-- $pkg $target"
      fuzz_one "$pkg" "$dir" "$target"
    done
  done
fi

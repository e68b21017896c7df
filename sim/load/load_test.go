package load

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

const exposition = `# HELP ioc_ingest_committed_total Observations committed.
# TYPE ioc_ingest_committed_total counter
ioc_ingest_committed_total{kind="traffic"} 1200
ioc_ingest_committed_total{kind="units"} 300
ioc_ingest_rejected_total{reason="bad_json"} 3
ioc_ingest_rejected_total{reason="too_old",kind="traffic"} 4
ioc_ingest_rejected_total{kind="units",reason="too_old"} 1
ioc_ingest_commit_lag_seconds_bucket{le="0.01"} 10
ioc_ingest_commit_lag_seconds_bucket{le="0.1"} 60
ioc_ingest_commit_lag_seconds_bucket{le="1"} 100
ioc_ingest_commit_lag_seconds_bucket{le="+Inf"} 100
ioc_ingest_commit_lag_seconds_sum 12.5
ioc_ingest_commit_lag_seconds_count 100
weird_label{path="a\"b\\c",x="1"} 2 1700000000000
`

func TestParseProm(t *testing.T) {
	s, err := parseProm(strings.NewReader(exposition), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.sum(metricCommitted); got != 1500 {
		t.Errorf("committed %v", got)
	}
	if got := s.by(metricRejected, "reason"); got["too_old"] != 5 || got["bad_json"] != 3 {
		t.Errorf("rejected by reason %v", got)
	}
	if s.sum("weird_label") != 2 || s.labels[s.names["weird_label"][0]]["path"] != `a"b\c` {
		t.Errorf("labels %v", s.labels[s.names["weird_label"][0]])
	}
	bs := s.buckets(metricLag)
	if len(bs) != 4 || !math.IsInf(bs[3].le, 1) {
		t.Fatalf("buckets %v", bs)
	}
	p50, _ := quantile(0.5, bs)
	if math.Abs(p50-0.082) > 1e-9 { // 0.01 + 0.09·(50−10)/50
		t.Errorf("p50 %v", p50)
	}
	p99, over := quantile(0.99, bs)
	if over || math.Abs(p99-0.9775) > 1e-9 { // 0.1 + 0.9·(99−60)/40
		t.Errorf("p99 %v over %v", p99, over)
	}
	d := deltaBuckets(bs, bs)
	if v, _ := quantile(0.5, d); !math.IsNaN(v) {
		t.Errorf("quantile of no observations = %v", v)
	}
	if _, err := parseProm(strings.NewReader("x{a=\"b} 1\n"), time.Now()); err == nil {
		t.Error("unterminated label accepted")
	}
}

func TestCPUSample(t *testing.T) {
	a := sampleCPU(pids{})
	end := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(end) { // burn a little CPU
	}
	b := sampleCPU(pids{})
	pct := cpuPercent(a, b)
	// Only that it is seen: on a busy shared machine the spin may get little.
	if pct[groupSelf] <= 0 || pct[groupSelf] > 250 {
		t.Errorf("own CPU %.0f%% while spinning", pct[groupSelf])
	}
	if _, ok := pct["machine"]; !ok || a.cores < 1 {
		t.Errorf("no machine figure: %v", pct)
	}
}

// The broker phase alone against the real broker, briefly.
func TestBrokerPhase(t *testing.T) {
	broker := os.Getenv("IOC_MQTT_URL")
	if broker == "" {
		broker = "tcp://127.0.0.1:1883"
	}
	l, err := New(Config{Broker: broker, WardsPath: "../../../shared/data/hanoi/wards.geojson",
		PhaseDuration: 2 * time.Second, Warmup: 500 * time.Millisecond, Runs: 1, Conns: 2, Window: 200,
		Rate: 500, Sensors: 200, BenchPrefix: "iocsimtest-bench"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := l.watchSys(ctx)
	if err != nil {
		t.Skipf("no broker: %v", err)
	}
	c.Disconnect(0)
	rep, err := l.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != 1 || rep.Phases[0].Phase != "broker" {
		t.Fatalf("phases %+v", rep.Phases)
	}
	p := rep.Phases[0]
	if rep.CeilingPerS <= 0 || p.Published < 200 || p.Lost != 0 {
		t.Errorf("ceiling %.0f/s, published %d, lost %d", rep.CeilingPerS, p.Published, p.Lost)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	if !strings.Contains(sb.String(), "broker ceiling") {
		t.Error(sb.String())
	}
}

func TestListenerPID(t *testing.T) {
	if got := portOf("tcp://user:pw@127.0.0.1:1883"); got != 1883 {
		t.Errorf("portOf = %d", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := listenerPID(ln.Addr().(*net.TCPAddr).Port); got != os.Getpid() {
		t.Errorf("listenerPID = %d, want %d", got, os.Getpid())
	}
}

// iocd's metrics are outside input to the load tool: no panic on any text.
func FuzzParseProm(f *testing.F) {
	f.Add(exposition)
	f.Add("x{")
	f.Add(`x{a="\`)
	f.Add("x 1 2 3\n# c\n\ny{} NaN")
	f.Fuzz(func(t *testing.T, s string) {
		if smp, err := parseProm(strings.NewReader(s), time.Now()); err == nil {
			quantile(0.99, smp.buckets("x"))
		}
	})
}

func TestPgTitleDatabase(t *testing.T) {
	for _, c := range []struct {
		title, db string
		ok        bool
	}{
		{"postgres: 15/main: ioc ioc_bench_load 127.0.0.1(45076) idle   ", "ioc_bench_load", true},
		{"postgres: ioc other [local] COPY", "other", true},
		{"postgres: 15/main: autovacuum worker ioc_bench_load", "ioc_bench_load", true},
		{"postgres: 15/main: walwriter", "", false},
		{"postgres: checkpointer", "", false},
		{"postgres: 15/main: logical replication launcher", "", false},
		{"/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", "", false},
	} {
		if db, ok := pgTitleDatabase(c.title); db != c.db || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.title, db, ok, c.db, c.ok)
		}
	}
}

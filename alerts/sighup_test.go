package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ioc/db/dbtest"
	"ioc/ingest"
)

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// logRecorder keeps what the engine logs, so a test can wait for the
// engine to have handled a signal whose only other effect is nothing.
type logRecorder struct {
	mu   sync.Mutex
	recs []loggedRecord
	next slog.Handler
}

type loggedRecord struct {
	level slog.Level
	msg   string
	attrs string
}

func newLogRecorder() *logRecorder { return &logRecorder{next: testLog().Handler()} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool { b.WriteString(a.String() + " "); return true })
	h.mu.Lock()
	h.recs = append(h.recs, loggedRecord{r.Level, r.Message, b.String()})
	h.mu.Unlock()
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// The engine logs without attributes or groups of its own that matter here.
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// sighups returns the engine's log records about SIGHUPs it handled:
// those at level Error were refused files.
func (h *logRecorder) sighups() (handled, refused []loggedRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if strings.HasPrefix(r.msg, "SIGHUP") {
			handled = append(handled, r)
			if r.level >= slog.LevelError {
				refused = append(refused, r)
			}
		}
	}
	return handled, refused
}

func (h *logRecorder) saw(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.msg == msg {
			return true
		}
	}
	return false
}

// withRule is the shipped rule set plus one rule.
func withRule(t *testing.T, rule string) string {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(DefaultRules, &doc); err != nil {
		t.Fatal(err)
	}
	var r any
	if err := json.Unmarshal([]byte(rule), &r); err != nil {
		t.Fatal(err)
	}
	doc["rules"] = append(doc["rules"].([]any), r)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// SIGHUP makes the engine re-read its rules file and store it for every
// instance, with an audit entry; a file that does not validate is refused
// and the running set stays, and the engine carries on (evaluating, and
// answering the next SIGHUP).
//
// The test sends SIGHUP to its own process. Go's default for a SIGHUP
// nobody asked for is to exit, so the test keeps a handler of its own
// registered for its whole length (the signal goes to every registered
// channel): a SIGHUP that beats the engine's signal.Notify, or outlives
// it, is caught instead of killing the test binary. Every other engine in
// this package runs with NoSignals and no test here is parallel, so no
// other test sees these signals.
func TestSIGHUPReloadsTheRulesFile(t *testing.T) {
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(guard) }) // runs last: after the engine has stopped

	ctx := context.Background()
	pool, _ := dbtest.New(t)
	path := t.TempDir() + "/rules.json"
	writeFile(t, path, string(DefaultRules))
	logs := newLogRecorder()
	e, err := New(ctx, Config{RulesFile: path, Geo: fakeGeo{}, Tick: time.Hour}, pool, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	v := &env{e: e, pool: pool, ctx: ctx}
	runCtx, stop := context.WithCancel(ctx)
	ended := make(chan error, 1)
	go func() { ended <- e.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ended })
	running := func(when string) {
		t.Helper()
		select {
		case err := <-ended:
			t.Fatalf("%s: the engine stopped: %v", when, err)
		default:
		}
	}
	// Run registers the SIGHUP handler as it starts, well before the
	// evaluation loop has replayed the tables.
	waitUntil(t, "the engine to start", func() bool { return logs.saw("alert engine: replayed recent observations") })

	_, v0 := e.RulesDocument()
	if v0 != 1 {
		t.Fatalf("first start: rule set version %d, want 1", v0)
	}
	// hup signals this process until the engine has handled one more SIGHUP.
	hup := func() {
		t.Helper()
		before, _ := logs.sighups()
		deadline := time.Now().Add(15 * time.Second)
		for {
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			// Resend only if the engine's handler missed it (not yet
			// registered); handling takes milliseconds.
			retry := time.Now().Add(5 * time.Second)
			for time.Now().Before(retry) {
				if now, _ := logs.sighups(); len(now) > len(before) {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			if time.Now().After(deadline) {
				t.Fatal("the engine never handled SIGHUP")
			}
		}
	}
	rulesAudits := func() int {
		return v.count(t, `SELECT count(*) FROM audit_log WHERE action = 'rules:write'`)
	}
	intrusion := func(dev string, lon float64) []*ingest.Observation {
		o := camera(dev, 0, "intrusion", 0.95, lon, 21.03)
		o.TS, o.MsgID = time.Now(), dev
		return []*ingest.Observation{o}
	}

	// A new rule in the file, then SIGHUP: version 2, from the file, for
	// everyone (the row), audited, and evaluated.
	next := withRule(t, `{"id":"perimeter-intrusion","type":"match","incident_kind":"intrusion","severity":"moderate",
		"events":["intrusion"],"min_confidence":0.9,"title":"Xâm nhập khu vực cấm"}`)
	writeFile(t, path, next)
	hup()
	if _, refused := logs.sighups(); len(refused) != 0 {
		t.Fatalf("a valid file was refused: %+v", refused)
	}
	raw, v1 := e.RulesDocument()
	if v1 != v0+1 || e.Rules().rule("perimeter-intrusion") == nil {
		t.Fatalf("after SIGHUP: version %d, new rule %v", v1, e.Rules().rule("perimeter-intrusion") != nil)
	}
	if n := v.count(t, `SELECT count(*) FROM alert_rules WHERE version = $1 AND updated_by = 'sighup' AND body = $2::jsonb`, v1, next); n != 1 {
		t.Fatal("alert_rules does not hold the file as version 2")
	}
	if n := v.count(t, `SELECT count(*) FROM audit_log WHERE action = 'rules:write' AND actor = 'system' AND target = 'rules'
		AND (detail->>'version')::bigint = $1 AND detail->>'source' = 'SIGHUP ' || $2::text`, v1, path); n != 1 || rulesAudits() != 1 {
		t.Fatalf("audit entries for the reload: %d of %d", n, rulesAudits())
	}
	waitUntil(t, "the evaluator to take the new rules", func() bool { return len(e.reload) == 0 })
	e.Observe(intrusion("cam-gate-1", 105.80))
	waitUntil(t, "an intrusion incident", func() bool { return v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'intrusion'`) == 1 })

	// A file that does not validate: refused, named in the log; nothing
	// changes and the engine carries on.
	set := e.Rules()
	writeFile(t, path, withRule(t, `{"id":"bad-severity","type":"match","incident_kind":"intrusion","severity":"catastrophic"}`))
	hup()
	_, refused := logs.sighups()
	if len(refused) != 1 || !strings.Contains(refused[0].attrs, "bad-severity") {
		t.Fatalf("refusal not logged with the rule it names: %+v", refused)
	}
	raw2, v2 := e.RulesDocument()
	if v2 != v1 || !bytes.Equal(raw2, raw) || e.Rules() != set {
		t.Fatalf("a refused file changed the running set: version %d, was %d", v2, v1)
	}
	if n := v.count(t, `SELECT count(*) FROM alert_rules WHERE version = $1 AND body = $2::jsonb`, v1, next); n != 1 || rulesAudits() != 1 {
		t.Fatalf("a refused file changed the stored set or was audited (%d audit entries)", rulesAudits())
	}
	running("after a refused file")
	e.Observe(intrusion("cam-gate-2", 105.90))
	waitUntil(t, "a second intrusion incident", func() bool { return v.count(t, `SELECT count(*) FROM incidents WHERE kind = 'intrusion'`) == 2 })

	// The handler still answers: the shipped file again is version 3.
	writeFile(t, path, string(DefaultRules))
	hup()
	if _, v3 := e.RulesDocument(); v3 != v1+1 || e.Rules().rule("perimeter-intrusion") != nil || rulesAudits() != 2 {
		t.Fatalf("SIGHUP after a refusal: version %d, %d audit entries", v3, rulesAudits())
	}
	running("at the end")
}

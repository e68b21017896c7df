package streams

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ioc/alerts"
	"ioc/db/dbtest"
)

// Until Run has fixed the seq its pump starts from, no socket is
// accepted: a client resumed or snapshotted at an earlier seq would miss
// the events between the two (the fault suite saw that gap on a
// restarted instance).
func TestServeWSRefusedUntilStarted(t *testing.T) {
	g := New(Config{})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	g.ServeWS(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), `"starting"`) {
		t.Fatalf("before Run: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}

	// Run's start reads the log's position from a real PostgreSQL, then
	// accepts.
	pool, _ := dbtest.New(t)
	if _, err := pool.Exec(context.Background(), `UPDATE incident_seq SET seq = 41`); err != nil {
		t.Fatal(err)
	}
	g = New(Config{Events: alerts.NewEvents(pool, nil)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := g.start(ctx)
	if err != nil || seq != 41 || g.delivered.Load() != 41 || !g.accepting() || *g.epoch.Load() == "" {
		t.Fatalf("start: seq %d (delivered %d), err %v, accepting %v, epoch %q",
			seq, g.delivered.Load(), err, g.accepting(), *g.epoch.Load())
	}
}

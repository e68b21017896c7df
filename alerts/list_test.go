package alerts

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Issue 9, finding 6: q is served by the trigram index on titles, not by
// a scan of every incident, and its LIKE wildcards are literal.
func TestTextSearchUsesTrigramIndex(t *testing.T) {
	v := newEnv(t, nil)
	if n := v.count(t, `SELECT count(*) FROM pg_indexes WHERE tablename = 'incidents' AND indexname = 'incidents_title_trgm_idx'
		AND indexdef LIKE '%gin (title gin_trgm_ops)%'`); n != 1 {
		t.Fatal("no trigram index on incidents.title")
	}
	// Enough incidents that an index is worth it.
	if _, err := v.pool.Exec(v.ctx, `INSERT INTO incidents (id, kind, severity, status, title, geom, opened_by, auto_resolve,
			opened_at, updated_at, last_evidence_at)
		SELECT 'T' || lpad(g::text, 8, '0'), 'traffic_congestion', 'moderate', 'new',
			'Ùn tắc đường số ' || g || ' hướng ' || md5(g::text), ST_SetSRID(ST_MakePoint(105.85, 21.03), 4326), 'rule:congestion', true,
			now() - g * interval '1 minute', now(), now()
		FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := v.pool.Exec(v.ctx, `ANALYZE incidents`); err != nil {
		t.Fatal(err)
	}
	sql, args, err := listQuery(IncidentFilter{Text: "50% hướng 9f", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	err = pgx.BeginFunc(v.ctx, v.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(v.ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		rows, err := tx.Query(v.ctx, `EXPLAIN `+sql, args...)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "incidents_title_trgm_idx") {
		t.Fatalf("the q search does not use the trigram index:\n%s", p)
	} else {
		t.Logf("plan:\n%s", p)
	}
	items, _, err := v.e.store.List(v.ctx, IncidentFilter{Text: "đường số 1234 ", Limit: 10})
	if err != nil || len(items) != 1 || !strings.HasPrefix(items[0].Title, "Ùn tắc đường số 1234 ") {
		t.Fatalf("q search: %v %d", err, len(items))
	}
	for _, q := range []string{"%", "_", `\`} {
		if items, _, err := v.e.store.List(v.ctx, IncidentFilter{Text: q, Limit: 10}); err != nil || len(items) != 0 {
			t.Fatalf("q=%s matched %d titles (none has it): %v", q, len(items), err)
		}
	}
	// Keyset pages: the second starts where the first ended.
	p1, next, err := v.e.store.List(v.ctx, IncidentFilter{Kind: []string{"traffic_congestion"}, Limit: 10})
	if err != nil || len(p1) != 10 || next == "" {
		t.Fatalf("first page: %v %d %q", err, len(p1), next)
	}
	p2, _, err := v.e.store.List(v.ctx, IncidentFilter{Kind: []string{"traffic_congestion"}, Limit: 10, Cursor: next})
	if err != nil || len(p2) != 10 || !p2[0].OpenedAt.Before(p1[9].OpenedAt) {
		t.Fatalf("second page: %v %d", err, len(p2))
	}
	if _, _, err := v.e.store.List(v.ctx, IncidentFilter{Limit: 10, Cursor: "not-a-cursor"}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

package alerts

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The response-time report computed in Go (ResponseTimes) answers what
// the aggregate query it replaced answered (responseTimesSQL, kept here
// as it was), on a few hundred incidents with random durations, some
// never acknowledged, dispatched or resolved, some exactly at a target.
func TestHistoryResponseTimesAsSQL(t *testing.T) {
	v := newHistEnv(t)
	_, err := v.pool.Exec(v.ctx, `INSERT INTO incidents (id, kind, severity, status, title, geom, ward_code, opened_by, auto_resolve,
			opened_at, updated_at, acknowledged_at, dispatched_at, resolved_at, last_evidence_at)
		SELECT 'RT' || g, (ARRAY['fire','accident','flooding'])[1 + g % 3], (ARRAY['minor','moderate','severe','extreme'])[1 + g % 4],
			'resolved', '', ST_SetSRID(ST_MakePoint(105.8, 21.0), 4326),
			(ARRAY['00004','00008',NULL,'00004','00012'])[1 + g % 5], 'rule:t', false,
			opened, opened,
			CASE WHEN g % 7 = 0 THEN NULL WHEN g % 11 = 0 THEN opened + interval '60 seconds' ELSE opened + ((g::bigint * 7919) % 200003) * interval '1 millisecond' + (g % 997) * interval '1 microsecond' END,
			CASE WHEN g % 3 = 0 THEN NULL WHEN g % 13 = 0 THEN opened + interval '120 seconds' ELSE opened + ((g::bigint * 104729) % 400009) * interval '1 millisecond' + (g % 991) * interval '1 microsecond' END,
			CASE WHEN g % 9 = 0 THEN NULL ELSE opened + ((g::bigint * 1299709) % 10800007) * interval '1 millisecond' END,
			opened
		FROM (SELECT g, $1::timestamptz - ((g::bigint * 15485863) % 1728000) * interval '1 second' - (g % 983) * interval '1 microsecond' AS opened FROM generate_series(1, 400) g) s`, v.now)
	if err != nil {
		t.Fatal(err)
	}
	s := v.e.Store()
	for _, c := range []struct {
		by string
		f  IncidentFilter
		t  ResponseTargets
	}{
		{"ward", IncidentFilter{}, DefaultTargets},
		{"kind", IncidentFilter{}, DefaultTargets},
		{"ward", IncidentFilter{Severity: []string{"severe", "extreme"}, Wards: []string{"00004", "00012"}}, DefaultTargets},
		{"kind", IncidentFilter{From: v.now.Add(-5 * 24 * time.Hour)}, ResponseTargets{Acknowledge: 30 * time.Second, Dispatch: time.Minute, Resolve: 90 * time.Minute}},
		{"ward", IncidentFilter{Wards: []string{}}, DefaultTargets}, // an empty scope: nothing
	} {
		got, err := s.ResponseTimes(v.ctx, c.f, c.by, c.t)
		if err != nil {
			t.Fatal(err)
		}
		want, err := responseTimesSQL(v.ctx, s, c.f, c.by, c.t)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("by %s %+v:\n got %s\nwant %s", c.by, c.f, reportString(got), reportString(want))
		}
		if c.f.Wards == nil && got.All.Count == 0 {
			t.Errorf("by %s: no incidents counted", c.by)
		}
	}
}

func reportString(r *ResponseReport) string {
	st := func(s StageTimes) string {
		f := func(p *float64) string {
			if p == nil {
				return "nil"
			}
			return fmt.Sprint(*p)
		}
		return fmt.Sprintf("{%d %s %s %s}", s.Reached, f(s.P50), f(s.P90), f(s.WithinTarget))
	}
	out := ""
	for _, g := range append([]ResponseGroup{r.All}, r.Items...) {
		out += fmt.Sprintf("\n  %s %q n=%d ack%s disp%s res%s", g.Key, g.Name, g.Count, st(g.Acknowledge), st(g.Dispatch), st(g.Resolve))
	}
	return out
}

// responseTimesSQL is ResponseTimes as it was until the report moved to
// Go: percentile_cont and FILTER counts under GROUPING SETS.
func responseTimesSQL(ctx context.Context, s *Store, f IncidentFilter, by string, t ResponseTargets) (*ResponseReport, error) {
	statsSpan(&f, s.now())
	key, _ := groupKey(by)
	t = t.withDefaults()
	var a sqlArgs
	where, err := filterWhere(f, &a)
	if err != nil {
		return nil, err
	}
	stage := func(col string, target time.Duration) string {
		d := "extract(epoch FROM i." + col + " - i.opened_at)"
		return fmt.Sprintf(`count(i.%s), percentile_cont(0.5) WITHIN GROUP (ORDER BY %s), percentile_cont(0.9) WITHIN GROUP (ORDER BY %s),
			count(*) FILTER (WHERE %s <= %s)`, col, d, d, d, a.arg(target.Seconds()))
	}
	sql := `SELECT grouping(` + key + `), coalesce(` + key + `, ''), count(*), ` +
		stage("acknowledged_at", t.Acknowledge) + `, ` + stage("dispatched_at", t.Dispatch) + `, ` + stage("resolved_at", t.Resolve) +
		` FROM incidents i WHERE ` + where + ` GROUP BY GROUPING SETS ((` + key + `), ())`
	rows, err := s.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rep := &ResponseReport{By: by, From: f.From, To: f.To, Items: []ResponseGroup{},
		TargetsS: map[string]int{"acknowledge": int(t.Acknowledge.Seconds()), "dispatch": int(t.Dispatch.Seconds()), "resolve": int(t.Resolve.Seconds())}}
	rep.All.Key = "all"
	for rows.Next() {
		var (
			total int
			g     ResponseGroup
			in    [3]int64
		)
		err := rows.Scan(&total, &g.Key, &g.Count,
			&g.Acknowledge.Reached, &g.Acknowledge.P50, &g.Acknowledge.P90, &in[0],
			&g.Dispatch.Reached, &g.Dispatch.P50, &g.Dispatch.P90, &in[1],
			&g.Resolve.Reached, &g.Resolve.P50, &g.Resolve.P90, &in[2])
		if err != nil {
			return nil, err
		}
		for i, st := range []*StageTimes{&g.Acknowledge, &g.Dispatch, &g.Resolve} {
			if st.Reached > 0 {
				share := float64(in[i]) / float64(st.Reached)
				st.WithinTarget = &share
			}
		}
		if total == 1 {
			g.Key = "all"
			rep.All = g
			continue
		}
		if by == "ward" {
			if r := s.wardRef(g.Key); r != nil {
				g.Name = r.Name
			}
		}
		rep.Items = append(rep.Items, g)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(rep.Items, func(x, y ResponseGroup) int {
		if x.Count != y.Count {
			return int(y.Count - x.Count)
		}
		if x.Key < y.Key {
			return -1
		}
		return 1
	})
	return rep, nil
}

// percentileCont against worked values of percentile_cont.
func TestPercentileCont(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		p    float64
		want float64
	}{
		{[]float64{7}, 0.5, 7},
		{[]float64{7}, 0.9, 7},
		{[]float64{1, 2}, 0.5, 1.5},
		{[]float64{1, 2, 3}, 0.5, 2},
		{[]float64{10, 20, 30, 40}, 0.9, 37},            // pos 2.7: 30 + 10·0.7
		{[]float64{30, 40, 50, 90}, 0.5, 45},            // the fixture's acknowledgements
		{[]float64{100, 110, 200}, 0.9, 182},            // pos 1.8: 110 + 90·0.8
		{[]float64{0.1, 0.2, 0.3, 0.4, 0.5}, 0.9, 0.46}, // pos 3.6
	} {
		if got := percentileCont(c.v, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("percentileCont(%v, %v) = %v, want %v", c.v, c.p, got, c.want)
		}
	}
}

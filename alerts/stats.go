package alerts

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"ioc/api"
)

// Statistics over incidents: counts per ward, kind, severity, hour or day
// (GET /stats/incidents) and response times per ward or kind (GET
// /stats/response-times). Both select with IncidentFilter through
// filterWhere, so they count exactly what GET /incidents lists for the
// same filters, within the caller's wards.

// StatsGroups are the group_by values of IncidentStats.
var StatsGroups = []string{"ward", "kind", "severity", "hour", "day"}

// DefaultStatsSpan is the span statistics cover when from is not given.
const DefaultStatsSpan = 30 * 24 * time.Hour

// StatsBucket is one group of IncidentStats.
type StatsBucket struct {
	// Key is the ward code ("" for incidents outside every ward), the
	// kind, the severity, or the bucket's start (RFC 3339, Hanoi time).
	Key string `json:"key"`
	// Name is the ward's name, for group_by=ward.
	Name  string `json:"name,omitempty"`
	Count int64  `json:"count"`
}

// IncidentStats is the answer of GET /stats/incidents.
type IncidentStats struct {
	GroupBy string        `json:"group_by"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Total   int64         `json:"total"`
	Items   []StatsBucket `json:"items"`
}

// groupKey is the SQL of a group's key over incidents i. Hour and day
// buckets are cut in Hanoi's time (a day starts at 00:00 +07:00).
func groupKey(by string) (string, error) {
	switch by {
	case "ward":
		return "coalesce(i.ward_code, '')", nil
	case "kind":
		return "i.kind", nil
	case "severity":
		return "i.severity", nil
	case "hour", "day":
		return "to_char(date_trunc('" + by + "', i.opened_at, 'Asia/Ho_Chi_Minh') AT TIME ZONE 'Asia/Ho_Chi_Minh', 'YYYY-MM-DD\"T\"HH24:MI:SS')", nil
	}
	return "", &api.ParamError{Name: "group_by", Problem: "want one of ward, kind, severity, hour, day"}
}

// statsSpan fills a statistics filter's missing bounds: to is now, from
// DefaultStatsSpan before to.
func statsSpan(f *IncidentFilter, now time.Time) {
	if f.To.IsZero() {
		f.To = now
	}
	if f.From.IsZero() {
		f.From = f.To.Add(-DefaultStatsSpan)
	}
}

// IncidentStats counts the incidents matching f per group (by: one of
// StatsGroups). from and to default to the last 30 days. Hour and day
// buckets without incidents are answered with count 0, in time order;
// other groups come largest first (severity in its own order).
func (s *Store) IncidentStats(ctx context.Context, f IncidentFilter, by string) (*IncidentStats, error) {
	statsSpan(&f, s.now())
	key, err := groupKey(by)
	if err != nil {
		return nil, err
	}
	var a sqlArgs
	where, err := filterWhere(f, &a)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+key+`, count(*) FROM incidents i WHERE `+where+` GROUP BY 1`, a.customPlan()...)
	if err != nil {
		return nil, fmt.Errorf("incident statistics: %w", err)
	}
	defer rows.Close()
	out := &IncidentStats{GroupBy: by, From: f.From, To: f.To, Items: []StatsBucket{}}
	for rows.Next() {
		var b StatsBucket
		if err := rows.Scan(&b.Key, &b.Count); err != nil {
			return nil, fmt.Errorf("incident statistics: %w", err)
		}
		out.Total += b.Count
		out.Items = append(out.Items, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("incident statistics: %w", err)
	}
	switch by {
	case "hour", "day":
		out.Items = fillBuckets(out.Items, by, f.From, f.To)
	case "severity":
		sort.Slice(out.Items, func(i, j int) bool { return sevRank(out.Items[i].Key) > sevRank(out.Items[j].Key) })
	default:
		sort.Slice(out.Items, func(i, j int) bool {
			if out.Items[i].Count != out.Items[j].Count {
				return out.Items[i].Count > out.Items[j].Count
			}
			return out.Items[i].Key < out.Items[j].Key
		})
	}
	if by == "ward" {
		for i := range out.Items {
			if r := s.wardRef(out.Items[i].Key); r != nil {
				out.Items[i].Name = r.Name
			}
		}
	}
	return out, nil
}

// fillBuckets turns the counted buckets (keys in Hanoi local time without
// offset, as the query writes them) into every bucket from from to to, in
// order, keyed in RFC 3339 with +07:00.
func fillBuckets(got []StatsBucket, by string, from, to time.Time) []StatsBucket {
	counts := make(map[string]int64, len(got))
	for _, b := range got {
		counts[b.Key] = b.Count
	}
	step := time.Hour
	t := from.In(hanoi).Truncate(time.Hour) // Hanoi has whole-hour offsets and no DST
	if by == "day" {
		step = 24 * time.Hour
		y, m, d := from.In(hanoi).Date()
		t = time.Date(y, m, d, 0, 0, 0, 0, hanoi)
	}
	out := make([]StatsBucket, 0, int(to.Sub(t)/step)+1)
	for ; t.Before(to); t = t.Add(step) {
		out = append(out, StatsBucket{Key: t.Format(time.RFC3339), Count: counts[t.Format("2006-01-02T15:04:05")]})
	}
	return out
}

// ResponseTargets are how soon the centre means to acknowledge, dispatch
// and resolve an incident, measured from its opening.
type ResponseTargets struct {
	Acknowledge time.Duration `json:"acknowledge"`
	Dispatch    time.Duration `json:"dispatch"`
	Resolve     time.Duration `json:"resolve"`
}

// DefaultTargets follow NFPA 1225 (alarm processing: 90 % within 60 s;
// dispatch within 120 s) and a resolution hour.
var DefaultTargets = ResponseTargets{Acknowledge: 60 * time.Second, Dispatch: 120 * time.Second, Resolve: time.Hour}

func (t ResponseTargets) withDefaults() ResponseTargets {
	if t.Acknowledge <= 0 {
		t.Acknowledge = DefaultTargets.Acknowledge
	}
	if t.Dispatch <= 0 {
		t.Dispatch = DefaultTargets.Dispatch
	}
	if t.Resolve <= 0 {
		t.Resolve = DefaultTargets.Resolve
	}
	return t
}

// StageTimes are the times to one stage (acknowledge, dispatch, resolve)
// of the incidents of a group that reached it.
type StageTimes struct {
	// Reached is how many incidents reached the stage; the rest are
	// not counted in the percentiles nor the share.
	Reached int64 `json:"reached"`
	// P50 and P90 are seconds from opening (percentile_cont); null when
	// none reached the stage.
	P50 *float64 `json:"p50_s"`
	P90 *float64 `json:"p90_s"`
	// WithinTarget is the share of Reached that did so within the
	// target, 0 to 1; null when none reached the stage.
	WithinTarget *float64 `json:"within_target"`
}

// ResponseGroup is one ward's or kind's response times.
type ResponseGroup struct {
	Key         string     `json:"key"`
	Name        string     `json:"name,omitempty"`
	Count       int64      `json:"count"`
	Acknowledge StageTimes `json:"acknowledge"`
	Dispatch    StageTimes `json:"dispatch"`
	Resolve     StageTimes `json:"resolve"`
}

// ResponseReport is the answer of GET /stats/response-times: per group
// and for all of them together.
type ResponseReport struct {
	By       string          `json:"by"`
	From     time.Time       `json:"from"`
	To       time.Time       `json:"to"`
	TargetsS map[string]int  `json:"targets_s"`
	All      ResponseGroup   `json:"all"`
	Items    []ResponseGroup `json:"items"`
}

// ResponseTimes reports, for the incidents matching f (opened within
// from–to, by default the last 30 days), per ward or kind (by) and for
// all: p50 and p90 of the time from opening to acknowledgement, dispatch
// and resolution, and the share of those within t.
func (s *Store) ResponseTimes(ctx context.Context, f IncidentFilter, by string, t ResponseTargets) (*ResponseReport, error) {
	statsSpan(&f, s.now())
	if by != "ward" && by != "kind" {
		return nil, &api.ParamError{Name: "by", Problem: "want ward or kind"}
	}
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
		return nil, fmt.Errorf("response times: %w", err)
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
			return nil, fmt.Errorf("response times: %w", err)
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
		return nil, fmt.Errorf("response times: %w", err)
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

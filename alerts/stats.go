package alerts

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

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
//
// PostgreSQL reads the durations (one index-only scan of
// incidents_history_idx) and Go groups, sorts and interpolates them
// exactly as percentile_cont does (percentileCont): the same numbers as
// the aggregate query it replaces (TestHistoryResponseTimesAsSQL), at a
// fraction of its cost, since the ordered-set aggregates under GROUPING
// SETS cost ten times the scan itself (docs/history.md).
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
	// The intervals, binary, not extract(epoch ...): its numeric (and a
	// cast of it to float8, through text) cost more than the rest of the
	// query. seconds gives the value extract's exact seconds rounded to
	// float8 would be.
	d := func(col string) string { return "i." + col + " - i.opened_at" }
	rows, err := s.pool.Query(ctx, `SELECT `+key+`, `+d("acknowledged_at")+`, `+d("dispatched_at")+`, `+d("resolved_at")+
		` FROM incidents i WHERE `+where, a.customPlan()...)
	if err != nil {
		return nil, fmt.Errorf("response times: %w", err)
	}
	defer rows.Close()
	groups := map[string]*stageDurations{}
	all := &stageDurations{}
	var (
		k   []byte
		dur [3]pgtype.Interval
	)
	for rows.Next() {
		if err := rows.Scan(&k, &dur[0], &dur[1], &dur[2]); err != nil {
			return nil, fmt.Errorf("response times: %w", err)
		}
		g := groups[string(k)]
		if g == nil {
			g = &stageDurations{}
			groups[string(k)] = g
		}
		g.add(dur)
		all.add(dur)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("response times: %w", err)
	}
	targets := [3]float64{t.Acknowledge.Seconds(), t.Dispatch.Seconds(), t.Resolve.Seconds()}
	rep := &ResponseReport{By: by, From: f.From, To: f.To, Items: []ResponseGroup{},
		TargetsS: map[string]int{"acknowledge": int(t.Acknowledge.Seconds()), "dispatch": int(t.Dispatch.Seconds()), "resolve": int(t.Resolve.Seconds())}}
	rep.All = all.group("all", targets)
	for code, g := range groups {
		x := g.group(code, targets)
		if by == "ward" {
			if r := s.wardRef(code); r != nil {
				x.Name = r.Name
			}
		}
		rep.Items = append(rep.Items, x)
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

// stageDurations are one group's seconds to each stage, of the
// incidents that reached it.
type stageDurations struct {
	count int64
	secs  [3][]float64
}

func (g *stageDurations) add(d [3]pgtype.Interval) {
	g.count++
	for i, v := range d {
		if v.Valid {
			g.secs[i] = append(g.secs[i], seconds(v))
		}
	}
}

// seconds is extract(epoch FROM v) as float8: a difference of two
// timestamps has no months, and its exact microseconds divided by 1e6 in
// IEEE arithmetic is the float8 nearest to the exact decimal seconds,
// which is what PostgreSQL's cast of the numeric gives.
func seconds(v pgtype.Interval) float64 {
	us := v.Microseconds + int64(v.Days)*86_400_000_000 + int64(v.Months)*30*86_400_000_000
	return float64(us) / 1e6
}

func (g *stageDurations) group(key string, targets [3]float64) ResponseGroup {
	x := ResponseGroup{Key: key, Count: g.count}
	for i, st := range []*StageTimes{&x.Acknowledge, &x.Dispatch, &x.Resolve} {
		v := g.secs[i]
		st.Reached = int64(len(v))
		if len(v) == 0 {
			continue
		}
		slices.Sort(v)
		p50, p90 := percentileCont(v, 0.5), percentileCont(v, 0.9)
		within := sort.SearchFloat64s(v, math.Nextafter(targets[i], math.Inf(1))) // values <= target
		share := float64(within) / float64(len(v))
		st.P50, st.P90, st.WithinTarget = &p50, &p90, &share
	}
	return x
}

// percentileCont is PostgreSQL's percentile_cont over sorted values
// (orderedsetaggs.c, percentile_cont_final_common with float8_lerp): the
// rows at floor and ceil of p·(n−1), interpolated. The explicit float64
// conversions keep Go from fusing the multiply and add (the spec's rule),
// so the result is C's, bit for bit.
func percentileCont(sorted []float64, p float64) float64 {
	pos := float64(p * float64(len(sorted)-1))
	first, second := math.Floor(pos), math.Ceil(pos)
	lo := sorted[int(first)]
	if first == second {
		return lo
	}
	hi := sorted[int(second)]
	return lo + float64((hi-lo)*float64(pos-first))
}

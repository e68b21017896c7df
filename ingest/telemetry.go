package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Span caps per series: raw readings are paged, buckets are not many.
var telemetrySpan = map[string]time.Duration{
	"":   31 * 24 * time.Hour,
	"5m": 7 * 24 * time.Hour,
	"1h": 93 * 24 * time.Hour,
	"1d": 1100 * 24 * time.Hour,
}

// TelemetryQuery asks for one device's telemetry.
type TelemetryQuery struct {
	DeviceID, Kind string // the device (its kind names the table)
	From, To       time.Time
	// Bucket: "" raw readings in time order (from inclusive, to
	// exclusive); "5m", "1h" or "1d": aggregates of the buckets that
	// start in [From, To), each whole (hours and Hanoi days).
	Bucket string
	Limit  int
	After  *TelemetryCursor // nil: from the start
	Wards  []string         // nil: every ward (the caller's scope)
}

// TelemetryCursor continues a page: the last item's time (and message id).
type TelemetryCursor struct {
	TS    time.Time `json:"t"`
	MsgID string    `json:"m"`
}

// TelemetryPage is one page of a series; Next is nil on the last.
type TelemetryPage struct {
	Items []json.RawMessage
	Next  *TelemetryCursor
}

// Telemetry answers a telemetry query: raw readings from the observation
// table, buckets of 1h and 1d from telemetry_rollups up to rolled_until
// and from readings after it (so the series is current), 5m from
// readings. The caller has checked the span against telemetrySpan.
func (rd *Reader) Telemetry(ctx context.Context, q TelemetryQuery) (TelemetryPage, error) {
	spec, ok := telemetrySQL[q.Kind]
	if !ok {
		return TelemetryPage{Items: []json.RawMessage{}}, nil
	}
	if q.Bucket != "" {
		return rd.telemetryBuckets(ctx, q)
	}
	after := TelemetryCursor{TS: q.From.Add(-time.Nanosecond), MsgID: "\uffff"}
	if q.After != nil {
		after = *q.After
	}
	sql := fmt.Sprintf(`SELECT ts, msg_id, jsonb_build_object('ts', ts, 'id', nullif(msg_id, ''), 'received_at', received_at,
			'location', ST_AsGeoJSON(geom)::jsonb, 'ward', ward_code, %s)
		FROM %s WHERE device_id = $1 AND ts >= $2 AND ts < $3 AND (ts, msg_id) > ($4, $5)
		  AND ($7::text[] IS NULL OR ward_code = ANY($7))
		ORDER BY ts, msg_id LIMIT $6`, spec.raw, spec.table)
	rows, err := rd.pool.Query(ctx, sql, q.DeviceID, q.From, q.To, after.TS, after.MsgID, q.Limit+1, q.Wards)
	if err != nil {
		return TelemetryPage{}, fmt.Errorf("read telemetry: %w", err)
	}
	type item struct {
		key  TelemetryCursor
		body json.RawMessage
	}
	items, err := collect(rows, func(row pgx.Row) (item, error) {
		var it item
		err := row.Scan(&it.key.TS, &it.key.MsgID, &it.body)
		return it, err
	})
	if err != nil {
		return TelemetryPage{}, fmt.Errorf("read telemetry: %w", err)
	}
	page := TelemetryPage{Items: []json.RawMessage{}}
	for i, it := range items {
		if i == q.Limit {
			k := items[q.Limit-1].key
			page.Next = &k
			break
		}
		page.Items = append(page.Items, it.body)
	}
	return page, nil
}

// fieldStat is one numeric field over a bucket.
type fieldStat struct {
	Count int64    `json:"count"`
	Min   *float64 `json:"min"`
	Max   *float64 `json:"max"`
	Avg   *float64 `json:"avg"`
}

func (rd *Reader) telemetryBuckets(ctx context.Context, q TelemetryQuery) (TelemetryPage, error) {
	size := bucketSizes[q.Bucket]
	lo, hi := bucketCeil(q.From, size), bucketCeil(q.To, size)
	if q.After != nil && !q.After.TS.Before(lo) {
		lo = q.After.TS.Add(size)
	}
	table := kindTables[q.Kind]
	fields := rollupFields[q.Kind]
	// Raw rows of the tail: one per reading, its fields in the slots.
	slot := func(i int) string {
		c := string(rune('a' + i))
		if i < len(fields) {
			return fmt.Sprintf(", (%[1]s IS NOT NULL)::int AS %[2]s_n, %[1]s::float8 AS %[2]s_sum, %[1]s::real AS %[2]s_min, %[1]s::real AS %[2]s_max", fields[i], c)
		}
		return fmt.Sprintf(", 0 AS %[1]s_n, NULL::float8 AS %[1]s_sum, NULL::real AS %[1]s_min, NULL::real AS %[1]s_max", c)
	}
	rawCols := "1 AS n" + slot(0) + slot(1) + slot(2)
	// Buckets before rolled_until come from the rollups, readings from it
	// on from the table. Reading rolled_until first lets the statement name
	// only the part it needs: a month of hours already rolled reads no
	// reading partition at all.
	var rolled time.Time // zero: nothing rolled up (and 5m never is)
	if q.Bucket != "5m" {
		err := rd.pool.QueryRow(ctx, `SELECT rolled_until FROM telemetry_rollup_state`).Scan(&rolled)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return TelemetryPage{}, fmt.Errorf("read telemetry buckets: %w", err)
		}
	}
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	dev, from, to, wards := arg(q.DeviceID), arg(lo), arg(hi), arg(q.Wards)
	var parts []string
	if !rolled.IsZero() && rolled.After(lo) {
		parts = append(parts, `SELECT bucket_start AS b, `+rollupCols+` FROM telemetry_rollups
			WHERE device_id = `+dev+` AND bucket = `+arg(q.Bucket)+` AND bucket_start >= `+from+`
			  AND bucket_start < least(`+to+`, `+arg(rolled)+`::timestamptz)
			  AND (`+wards+`::text[] IS NULL OR ward_code = ANY(`+wards+`))`)
	}
	if rolled.Before(hi) {
		tailFrom := from
		if rolled.After(lo) {
			tailFrom = arg(rolled)
		}
		parts = append(parts, `SELECT date_bin(`+arg(size.String())+`::interval, ts, '`+bucketOrigin+`'::timestamptz) AS b, `+rawCols+`
			FROM `+table+` WHERE device_id = `+dev+` AND ts >= `+tailFrom+` AND ts < `+to+`
			  AND (`+wards+`::text[] IS NULL OR ward_code = ANY(`+wards+`))`)
	}
	if len(parts) == 0 { // an empty span
		return TelemetryPage{Items: []json.RawMessage{}}, nil
	}
	sql := `SELECT b, sum(n)::bigint, sum(a_n)::bigint, sum(a_sum), min(a_min)::float8, max(a_max)::float8,
		  sum(b_n)::bigint, sum(b_sum), min(b_min)::float8, max(b_max)::float8,
		  sum(c_n)::bigint, sum(c_sum), min(c_min)::float8, max(c_max)::float8
		FROM (` + strings.Join(parts, " UNION ALL ") + `) x
		GROUP BY b ORDER BY b LIMIT ` + arg(q.Limit+1)
	rows, err := rd.pool.Query(ctx, sql, args...)
	if err != nil {
		return TelemetryPage{}, fmt.Errorf("read telemetry buckets: %w", err)
	}
	type bucketRow struct {
		start time.Time
		body  json.RawMessage
	}
	items, err := collect(rows, func(row pgx.Row) (bucketRow, error) {
		var b time.Time
		var n int64
		var cnt [3]int64
		var sum, mn, mx [3]*float64
		if err := row.Scan(&b, &n, &cnt[0], &sum[0], &mn[0], &mx[0], &cnt[1], &sum[1], &mn[1], &mx[1], &cnt[2], &sum[2], &mn[2], &mx[2]); err != nil {
			return bucketRow{}, err
		}
		out := map[string]any{"bucket_start": b, "count": n}
		for i, f := range fields {
			out[f] = fieldStat{Count: cnt[i], Min: mn[i], Max: mx[i], Avg: avgOf(sum[i], cnt[i])}
		}
		body, err := json.Marshal(out)
		return bucketRow{b, body}, err
	})
	if err != nil {
		return TelemetryPage{}, fmt.Errorf("read telemetry buckets: %w", err)
	}
	page := TelemetryPage{Items: []json.RawMessage{}}
	for i, it := range items {
		if i == q.Limit {
			page.Next = &TelemetryCursor{TS: items[q.Limit-1].start}
			break
		}
		page.Items = append(page.Items, it.body)
	}
	return page, nil
}

func avgOf(sum *float64, n int64) *float64 {
	if sum == nil || n == 0 {
		return nil
	}
	v := math.Round(*sum/float64(n)*1000) / 1000
	return &v
}

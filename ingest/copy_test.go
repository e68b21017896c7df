package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"ioc/db/dbtest"
)

// The binary COPY stores exactly what pgx's CopyFrom of t.row stores, for
// every kind, with and without the optional columns.
func TestCopyBinaryMatchesRows(t *testing.T) {
	pool, _ := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	kinds := []Observation{
		{Kind: KindTraffic, SpeedKmh: 30.25, Volume: 10, Occupancy: 0.3, IntervalS: 60},
		{Kind: KindTraffic, SpeedKmh: 0, Volume: 1_000_000, Occupancy: 1, IntervalS: 86400, Lane: "2", HeadingDeg: 359.5, HasHeading: true},
		{Kind: KindCamera, Event: "crowd", Confidence: 0.9, Count: 40, HasCount: true, SnapshotURL: "https://c.example/1.jpg", Zone: "A"},
		{Kind: KindCamera, Event: "fire", Confidence: 0},
		{Kind: KindEmergency, Type: "medical", Priority: 2, Channel: "call_115", Note: "Người bị thương, đường Láng", CallerRef: "c-9"},
		{Kind: KindEmergency, Type: "fire", Priority: 5, Channel: "sensor"},
		{Kind: KindUnit, UnitKind: "ambulance", Status: "available"},
		{Kind: KindUnit, UnitKind: "police", Status: "en_route", SpeedKmh: 42, HasSpeed: true, HeadingDeg: 90, HasHeading: true},
	}
	rows := map[Kind][]obsRow{}
	for i := range 40 {
		o := kinds[i%len(kinds)]
		o.DeviceID, o.TS, o.MsgID = fmt.Sprintf("D-%d", i), now.Add(-time.Duration(i)*time.Second-time.Duration(i)*time.Microsecond), fmt.Sprint(i)
		if i%3 == 0 {
			o.MsgID = ""
		}
		o.HasPos, o.Lon, o.Lat = true, 105.8+float64(i)*1e-7, 21.0-float64(i)*1e-3
		if i%2 == 0 {
			o.Ward = "00004"
		}
		rows[o.Kind] = append(rows[o.Kind], obsRow{&o, now.Add(time.Duration(i) * time.Millisecond)})
	}
	for _, k := range tableOrder {
		tb := tables[k]
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE want (LIKE %[1]s); CREATE TEMP TABLE got (LIKE %[1]s)`, tb.name)); err != nil {
				return err
			}
			var boxed [][]any
			for _, r := range rows[k] {
				boxed = append(boxed, tb.row(r.o, pointEWKB(r.o.Lon, r.o.Lat), r.received))
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"want"}, tb.cols, pgx.CopyFromRows(boxed)); err != nil {
				return err
			}
			if err := copyBinary(ctx, tx, "got", k, rows[k]); err != nil {
				return err
			}
			var n, diff int
			if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM got),
				(SELECT count(*) FROM ((TABLE want EXCEPT ALL TABLE got) UNION ALL (TABLE got EXCEPT ALL TABLE want)) d)`).Scan(&n, &diff); err != nil {
				return err
			}
			if n != len(rows[k]) || diff != 0 {
				return fmt.Errorf("%d rows copied of %d, %d differ from pgx's", n, len(rows[k]), diff)
			}
			return tx.Rollback(ctx)
		})
		if err != nil && err != pgx.ErrTxClosed {
			t.Errorf("%s: %v", k, err)
		}
	}
}

package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxStoredPayload is how much of a rejected payload is kept (CONTRACT: 16 KiB).
const maxStoredPayload = 16 << 10

// table describes one observation table for COPY.
type table struct {
	name string
	cols []string
	row  func(o *Observation, geom []byte, received time.Time) []any
}

var commonCols = []string{"device_id", "ts", "msg_id", "received_at", "geom", "ward_code"}

func common(o *Observation, g []byte, received time.Time) []any {
	return []any{o.DeviceID, o.TS, o.MsgID, received, g, nullStr(o.Ward)}
}

var tables = map[Kind]table{
	KindTraffic: {"traffic_readings", append(commonCols[:6:6], "speed_kmh", "volume", "occupancy", "interval_s", "lane", "heading_deg"),
		func(o *Observation, g []byte, r time.Time) []any {
			return append(common(o, g, r), float32(o.SpeedKmh), int32(o.Volume), float32(o.Occupancy), int32(o.IntervalS), nullStr(o.Lane), optFloat(o.HeadingDeg, o.HasHeading))
		}},
	KindCamera: {"camera_events", append(commonCols[:6:6], "event", "confidence", "count", "snapshot_url", "zone"),
		func(o *Observation, g []byte, r time.Time) []any {
			var count any
			if o.HasCount {
				count = int32(o.Count)
			}
			return append(common(o, g, r), o.Event, float32(o.Confidence), count, nullStr(o.SnapshotURL), nullStr(o.Zone))
		}},
	KindEmergency: {"emergency_signals", append(commonCols[:6:6], "type", "priority", "channel", "note", "caller_ref"),
		func(o *Observation, g []byte, r time.Time) []any {
			return append(common(o, g, r), o.Type, int16(o.Priority), o.Channel, nullStr(o.Note), nullStr(o.CallerRef))
		}},
	KindUnit: {"unit_positions", append(commonCols[:6:6], "kind", "status", "speed_kmh", "heading_deg"),
		func(o *Observation, g []byte, r time.Time) []any {
			return append(common(o, g, r), o.UnitKind, o.Status, optFloat(o.SpeedKmh, o.HasSpeed), optFloat(o.HeadingDeg, o.HasHeading))
		}},
}

// tableOrder fixes the order tables are written in, so concurrent writers
// take locks in the same order.
var tableOrder = [...]Kind{KindTraffic, KindCamera, KindEmergency, KindUnit}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func optFloat(v float64, ok bool) any {
	if !ok {
		return nil
	}
	return float32(v)
}

// pointEWKB encodes a WGS 84 point as PostGIS's binary geometry (EWKB,
// little-endian, with SRID). It is on the hot path, so it writes the 25
// bytes itself; TestPointEWKBMatchesGoGeom holds it to go-geom's encoder.
func pointEWKB(lon, lat float64) []byte {
	b := make([]byte, 25)
	b[0] = 1                                         // little-endian
	binary.LittleEndian.PutUint32(b[1:], 0x20000001) // Point, with SRID
	binary.LittleEndian.PutUint32(b[5:], 4326)       // WGS 84
	binary.LittleEndian.PutUint64(b[9:], math.Float64bits(lon))
	binary.LittleEndian.PutUint64(b[17:], math.Float64bits(lat))
	return b
}

type deviceRow struct {
	id       string
	kind     Kind
	hasPos   bool
	lon, lat float64
	ward     string
	ts       time.Time
	interval int32
}

type statusRow struct {
	id     string
	ts     time.Time
	online bool
}

type rejectRow struct {
	received time.Time
	topic    string
	device   string
	item     int32
	reason   string
	detail   string
	payload  []byte
	size     int32
	digest   []byte
	dup      bool
}

// obsRow is an observation to store and when its message arrived.
type obsRow struct {
	o        *Observation
	received time.Time
}

// prepared is a batch turned into rows, built once and reused on retry.
type prepared struct {
	rows     map[Kind][]obsRow
	obs      []*Observation
	devices  []deviceRow
	statuses []statusRow
	rejects  []rejectRow
	items    int
}

func prepare(envs []*envelope, cache *deviceCache, touch time.Duration, now time.Time) *prepared {
	p := &prepared{rows: make(map[Kind][]obsRow, 4)}
	var n [len(tableOrder)]int // rows of each table, to size the slices once
	total := 0
	for _, e := range envs {
		for i := range e.obs {
			if k := slices.Index(tableOrder[:], e.obs[i].Kind); k >= 0 {
				n[k]++
				total++
			}
		}
	}
	for k, c := range n {
		if c > 0 {
			p.rows[tableOrder[k]] = make([]obsRow, 0, c)
		}
	}
	p.obs = make([]*Observation, 0, total)
	devs := map[string]deviceRow{}
	stats := map[string]statusRow{}
	rejSeen := map[string]bool{}
	for _, e := range envs {
		for i := range e.obs {
			o := &e.obs[i]
			p.items++
			if o.Kind == KindStatus {
				if prev, ok := stats[o.DeviceID]; !ok || !o.TS.Before(prev.ts) {
					stats[o.DeviceID] = statusRow{o.DeviceID, o.TS, o.Online}
				}
				continue
			}
			p.rows[o.Kind] = append(p.rows[o.Kind], obsRow{o, e.received})
			p.obs = append(p.obs, o)
			if cache.needsTouch(o, now, touch) {
				if d, ok := devs[o.DeviceID]; !ok || !o.TS.Before(d.ts) {
					devs[o.DeviceID] = deviceRow{o.DeviceID, o.Kind, o.HasPos, o.Lon, o.Lat, o.Ward, o.TS, int32(o.IntervalS)}
				}
			}
		}
		for _, r := range e.rejs {
			p.items++
			digest := e.digest
			if digest == nil {
				digest = rejectDigest(e.topic, e.payload)
			}
			key := fmt.Sprintf("%x/%d", digest, r.Item)
			if rejSeen[key] {
				continue // the same bytes twice in one batch: one row
			}
			rejSeen[key] = true
			stored := e.payload
			if len(stored) > maxStoredPayload {
				stored = stored[:maxStoredPayload]
			}
			size := e.size
			if size < len(e.payload) {
				size = len(e.payload) // envelopes made without Submit
			}
			p.rejects = append(p.rejects, rejectRow{e.received, e.topic, e.device, int32(r.Item), r.Reason, r.Detail, stored, int32(size), digest, e.dup})
		}
	}
	// A device whose status (e.g. a last will) arrived after its last
	// reading in this batch keeps that status; otherwise the reading says
	// it is online and the status row is moot. Only a batch with statuses
	// looks back over itself (the map of every reading's device this
	// replaces was half of prepare's allocation under load): the device's
	// last observation in arrival order decides.
	if len(stats) > 0 {
		withStatus, decided := len(stats), make(map[string]bool, len(stats))
		for j := len(envs) - 1; j >= 0 && len(decided) < withStatus; j-- {
			obs := envs[j].obs
			for i := len(obs) - 1; i >= 0; i-- {
				o := &obs[i]
				if _, ok := stats[o.DeviceID]; !ok || decided[o.DeviceID] {
					continue
				}
				decided[o.DeviceID] = true
				if o.Kind != KindStatus {
					delete(stats, o.DeviceID)
				}
			}
		}
	}
	for _, d := range devs {
		p.devices = append(p.devices, d)
	}
	for _, s := range stats {
		p.statuses = append(p.statuses, s)
	}
	// Sorted keys: concurrent writers lock device rows in the same order.
	sort.Slice(p.devices, func(i, j int) bool { return p.devices[i].id < p.devices[j].id })
	sort.Slice(p.statuses, func(i, j int) bool { return p.statuses[i].id < p.statuses[j].id })
	return p
}

func rejectDigest(topic string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)
}

// write stores a prepared batch in one transaction and returns how many
// observations were already stored.
//
// The fast path COPYs straight into the observation tables. A unique
// violation means some rows were delivered before (a redelivery after a
// crash or reconnect); then the batch is rewritten through temporary
// staging tables with INSERT ... ON CONFLICT DO NOTHING.
// smallBatch: a batch of at most this many observations is written by
// INSERT ... ON CONFLICT DO NOTHING, pipelined with the registry's
// statements in one round trip, instead of a savepoint and COPY (three):
// for a 115 call, or any batch at low load, round trips are what counts.
const smallBatch = 16

func write(ctx context.Context, conn *pgx.Conn, p *prepared, now time.Time, hook TxHook) (dups int64, after func(), err error) {
	staged := false
	tx := func(tx pgx.Tx) error {
		var err error
		if len(p.obs) <= smallBatch {
			dups, err = insertRows(ctx, tx, p, now)
		} else {
			dups, err = copyBatch(ctx, tx, p, now, staged)
		}
		if err != nil {
			return err
		}
		if hook != nil {
			if after, err = hook(ctx, tx, p.obs); err != nil {
				return hookError{err}
			}
		}
		return nil
	}
	err = pgx.BeginFunc(ctx, conn, tx)
	if isUniqueViolation(err) && len(p.obs) > smallBatch {
		// Some rows were stored before (a redelivery): the transaction
		// is rolled back and the batch written again through staging.
		staged = true
		err = pgx.BeginFunc(ctx, conn, tx)
	}
	if err != nil {
		after = nil
	}
	return dups, after, err
}

// copyBatch writes the rows by COPY, or, once a COPY met rows already
// stored (a redelivery), through staging tables and ON CONFLICT DO
// NOTHING; then the registry. The fast path takes no savepoint: a
// redelivery rolls back the whole transaction and write starts another
// (a savepoint cost a round trip and a subtransaction on every batch).
func copyBatch(ctx context.Context, tx pgx.Tx, p *prepared, now time.Time, staged bool) (dups int64, err error) {
	if staged {
		dups, err = stageRows(ctx, tx, p)
	} else {
		err = copyRows(ctx, tx, p)
	}
	if err != nil {
		return 0, err
	}
	var b pgx.Batch
	queueRegistry(&b, p, now)
	if b.Len() == 0 {
		return dups, nil
	}
	return dups, tx.SendBatch(ctx, &b).Close()
}

// insertRows writes a small batch and the registry in one round trip.
func insertRows(ctx context.Context, tx pgx.Tx, p *prepared, now time.Time) (dups int64, err error) {
	var b pgx.Batch
	for _, k := range tableOrder {
		rows := p.rows[k]
		if len(rows) == 0 {
			continue
		}
		t := tables[k]
		var sql strings.Builder
		args := make([]any, 0, len(rows)*len(t.cols))
		fmt.Fprintf(&sql, "INSERT INTO %s (%s) VALUES ", t.name, strings.Join(t.cols, ", "))
		for i, r := range rows {
			if i > 0 {
				sql.WriteString(", ")
			}
			sql.WriteByte('(')
			row := t.row(r.o, pointEWKB(r.o.Lon, r.o.Lat), r.received)
			for j := range row {
				if j > 0 {
					sql.WriteString(", ")
				}
				args = append(args, row[j])
				fmt.Fprintf(&sql, "$%d", len(args))
			}
			sql.WriteByte(')')
		}
		sql.WriteString(" ON CONFLICT DO NOTHING")
		n := int64(len(rows))
		b.Queue(sql.String(), args...).Exec(func(tag pgconn.CommandTag) error {
			dups += n - tag.RowsAffected()
			return nil
		})
	}
	queueRegistry(&b, p, now)
	if b.Len() == 0 {
		return 0, nil
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return 0, fmt.Errorf("insert: %w", err)
	}
	return dups, nil
}

func copyRows(ctx context.Context, tx pgx.Tx, p *prepared) error {
	for _, k := range tableOrder {
		rows := p.rows[k]
		if len(rows) == 0 {
			continue
		}
		t := tables[k]
		if err := copyBinary(ctx, tx, t.name, k, rows); err != nil {
			return fmt.Errorf("copy %s: %w", t.name, err)
		}
	}
	return nil
}

func stageRows(ctx context.Context, tx pgx.Tx, p *prepared) (dups int64, err error) {
	for _, k := range tableOrder {
		rows := p.rows[k]
		if len(rows) == 0 {
			continue
		}
		t := tables[k]
		stage := "stage_" + t.name
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s) ON COMMIT DELETE ROWS`, stage, t.name)); err != nil {
			return 0, fmt.Errorf("stage %s: %w", t.name, err)
		}
		if _, err := tx.Exec(ctx, "TRUNCATE "+stage); err != nil {
			return 0, err
		}
		if err := copyBinary(ctx, tx, stage, k, rows); err != nil {
			return 0, fmt.Errorf("copy %s: %w", stage, err)
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT * FROM %s ON CONFLICT DO NOTHING`, t.name, stage))
		if err != nil {
			return 0, fmt.Errorf("insert %s: %w", t.name, err)
		}
		dups += int64(len(rows)) - tag.RowsAffected()
	}
	return dups, nil
}

// queueRegistry adds to b the upserts of devices and statuses and the
// records of rejections, for the batch's transaction.
func queueRegistry(b *pgx.Batch, p *prepared, now time.Time) {
	if len(p.devices) > 0 && len(p.statuses) > 0 {
		// Each upsert takes its rows in id order, but two of them in one
		// transaction are two sorted runs: two writers whose batches
		// cross (one touching A and giving B's status, the other the
		// reverse) took A and B in opposite orders and PostgreSQL
		// aborted one (deadlock detected, seen under load). So the rows
		// of both sets are taken first, each kind in one sorted run:
		// devices not stored yet are inserted as placeholders (waiting,
		// in id order, for another writer inserting the same one; the
		// upserts below then fill them in, to what a fresh insert would
		// store), stored ones locked at the upserts' own strength (not FOR
		// UPDATE, which would wait on readers' key locks). After these two
		// statements every row the upserts touch is this transaction's.
		ids := make([]string, 0, len(p.devices)+len(p.statuses))
		for _, d := range p.devices {
			ids = append(ids, d.id)
		}
		for _, s := range p.statuses {
			ids = append(ids, s.id)
		}
		b.Queue(`INSERT INTO devices (id, kind, first_seen, last_seen, online)
			SELECT DISTINCT u.id, 'unknown', $2::timestamptz, $2::timestamptz, true FROM unnest($1::text[]) AS u(id)
			ORDER BY u.id
			ON CONFLICT (id) DO NOTHING`, ids, now)
		b.Queue(`SELECT 1 FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE`, ids)
	}
	if n := len(p.devices); n > 0 {
		ids, kinds, wards := make([]string, n), make([]string, n), make([]string, n)
		hasPos, lons, lats := make([]bool, n), make([]float64, n), make([]float64, n)
		tss, intervals := make([]time.Time, n), make([]int32, n)
		for i, d := range p.devices {
			ids[i], kinds[i], wards[i], hasPos[i], lons[i], lats[i], tss[i], intervals[i] = d.id, string(d.kind), d.ward, d.hasPos, d.lon, d.lat, d.ts, d.interval
		}
		b.Queue(`INSERT INTO devices AS d (id, kind, geom, ward_code, first_seen, last_seen, last_ts, interval_s, online)
			SELECT u.id, u.kind, CASE WHEN u.has_pos THEN ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) END,
			       nullif(u.ward, ''), $9, $9, u.ts, nullif(u.iv, 0), true
			FROM unnest($1::text[], $2::text[], $3::bool[], $4::float8[], $5::float8[], $6::text[], $7::timestamptz[], $8::int[])
			     AS u(id, kind, has_pos, lon, lat, ward, ts, iv)
			ORDER BY u.id
			ON CONFLICT (id) DO UPDATE SET
			  kind       = EXCLUDED.kind,
			  last_seen  = greatest(d.last_seen, EXCLUDED.last_seen),
			  geom       = CASE WHEN EXCLUDED.last_ts >= coalesce(d.last_ts, '-infinity') THEN coalesce(EXCLUDED.geom, d.geom) ELSE d.geom END,
			  ward_code  = CASE WHEN EXCLUDED.last_ts >= coalesce(d.last_ts, '-infinity') THEN coalesce(EXCLUDED.ward_code, d.ward_code) ELSE d.ward_code END,
			  last_ts    = greatest(d.last_ts, EXCLUDED.last_ts),
			  interval_s = coalesce(EXCLUDED.interval_s, d.interval_s),
			  online     = true`,
			ids, kinds, hasPos, lons, lats, wards, tss, intervals, now)
	}
	if n := len(p.statuses); n > 0 {
		ids, tss, online := make([]string, n), make([]time.Time, n), make([]bool, n)
		for i, s := range p.statuses {
			ids[i], tss[i], online[i] = s.id, s.ts, s.online
		}
		// Status follows arrival order, not ts: a last will carries the ts
		// the device set when it connected, long before it went silent.
		b.Queue(`INSERT INTO devices AS d (id, kind, first_seen, last_seen, online, status_ts)
			SELECT u.id, 'unknown', $4, $4, u.online, u.ts
			FROM unnest($1::text[], $2::timestamptz[], $3::bool[]) AS u(id, ts, online)
			ORDER BY u.id
			ON CONFLICT (id) DO UPDATE SET
			  last_seen = greatest(d.last_seen, EXCLUDED.last_seen),
			  online    = EXCLUDED.online,
			  status_ts = EXCLUDED.status_ts`,
			ids, tss, online, now)
	}
	if n := len(p.rejects); n > 0 {
		rec, topics, devs, items := make([]time.Time, n), make([]string, n), make([]string, n), make([]int32, n)
		reasons, details, payloads, sizes, digests, fresh := make([]string, n), make([]string, n), make([][]byte, n), make([]int32, n), make([][]byte, n), make([]int32, n)
		for i, r := range p.rejects {
			rec[i], topics[i], devs[i], items[i], reasons[i], details[i] = r.received, r.topic, r.device, r.item, r.reason, r.detail
			payloads[i], sizes[i], digests[i] = r.payload, r.size, r.digest
			if !r.dup {
				fresh[i] = 1 // a broker redelivery (DUP flag) is not a new delivery
			}
		}
		b.Queue(`INSERT INTO ingest_rejects AS r (received_at, last_received_at, deliveries, topic, device_id, item, reason, detail, payload, payload_size, digest)
			SELECT u.rec, u.rec, u.fresh, u.topic, nullif(u.dev, ''), u.item, u.reason, u.detail, u.payload, u.size, u.digest
			FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bytea[], $8::int[], $9::bytea[], $10::int[])
			     AS u(rec, topic, dev, item, reason, detail, payload, size, digest, fresh)
			ORDER BY u.digest, u.item
			ON CONFLICT (digest, item) DO UPDATE SET
			  last_received_at = greatest(r.last_received_at, EXCLUDED.last_received_at),
			  deliveries = r.deliveries + EXCLUDED.deliveries`,
			rec, topics, devs, items, reasons, details, payloads, sizes, digests, fresh)
	}
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// partitioned are the day-partitioned tables ingest writes.
var partitioned = map[string]bool{"traffic_readings": true, "camera_events": true, "emergency_signals": true, "unit_positions": true}

// isMissingPartition: a row's day has no partition yet. PostgreSQL says
// so with check_violation (23514) naming the partitioned table and no
// constraint (a CHECK constraint's violation names its constraint); the
// message text is localised, so it is not read.
func isMissingPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && pe.ConstraintName == "" && partitioned[pe.TableName]
}

// isPoison reports whether an error is caused by the data rather than the
// database: retrying the same rows would fail forever, so the batch is
// split and the message kept as a rejection. Data exceptions (class 22),
// integrity violations (class 23) and XX000: PostGIS reports a geometry it
// cannot parse as internal_error, so a message could otherwise block
// ingest for good (a genuine internal error of the server then costs an
// 'unstorable' rejection, which keeps the payload, not a silent loss).
// XX001 and XX002 (data or index corrupted) are the server's.
func isPoison(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || isMissingPartition(err) {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23":
		return true
	}
	return pe.Code == "XX000"
}

// faultClass names, for metrics, a failure that is not the data's fault.
// Such a batch is never acknowledged nor rejected: it is retried with
// backoff until the database takes it.
//
//	transient     no SQLSTATE (connection refused or cut, timeout), or class
//	              08 connection, 40 rollback (deadlock, serialization),
//	              53 insufficient resources, 57 operator intervention
//	              (shutdown, statement timeout): the database is away or busy
//	server_fault  everything else, notably 42 (missing permission, table
//	              or column: a wrong GRANT, a half-done upgrade), 55
//	              (object not in prerequisite state), 58 system error and
//	              XX001/XX002 corruption: someone must act; /readyz says so
func faultClass(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "transient"
	}
	switch pe.Code[:2] {
	case "08", "40", "53", "57":
		return "transient"
	}
	return "server_fault"
}

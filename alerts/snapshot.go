package alerts

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SnapshotMax caps a snapshot's incidents; a view that matches more is
// told so (Snapshot's truncated) and should narrow its filter.
const SnapshotMax = 10000

// Snapshot returns the incidents matching f (at most SnapshotMax, newest
// first) together with the seq of the last incident event they include,
// read in one repeatable-read transaction: every event with a greater seq
// changed the incidents after this picture was taken, and every event up
// to seq is in it. That is what lets a websocket send a snapshot and then
// deltas with nothing missed and nothing doubled.
func (s *Store) Snapshot(ctx context.Context, f IncidentFilter) (incidents []*Incident, seq int64, truncated bool, err error) {
	f.Limit, f.Cursor = SnapshotMax, ""
	sql, args, err := listQuery(f)
	if err != nil {
		return nil, 0, false, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, false, fmt.Errorf("incident snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The first statement fixes the transaction's view; read the seq
	// in it so the incidents below are exactly those of seq.
	if err := tx.QueryRow(ctx, `SELECT seq FROM incident_seq`).Scan(&seq); err != nil {
		return nil, 0, false, fmt.Errorf("incident snapshot: %w", err)
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("incident snapshot: %w", err)
	}
	defer rows.Close()
	incidents = []*Incident{}
	for rows.Next() {
		x, err := s.scanIncident(rows)
		if err != nil {
			return nil, 0, false, fmt.Errorf("incident snapshot: %w", err)
		}
		incidents = append(incidents, x)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("incident snapshot: %w", err)
	}
	if len(incidents) > SnapshotMax {
		incidents, truncated = incidents[:SnapshotMax], true
	}
	return incidents, seq, truncated, nil
}

// OpenByWard counts the open incidents per ward and severity (the
// websocket's wards layer: a city-zoom map without 10,000 markers).
// Incidents outside every ward are counted under "".
func (s *Store) OpenByWard(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(ward_code, ''), severity, count(*) FROM incidents
		WHERE status <> 'resolved' GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("open incidents by ward: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var ward, sev string
		var n int
		if err := rows.Scan(&ward, &sev, &n); err != nil {
			return nil, fmt.Errorf("open incidents by ward: %w", err)
		}
		if out[ward] == nil {
			out[ward] = map[string]int{}
		}
		out[ward][sev] = n
	}
	return out, rows.Err()
}

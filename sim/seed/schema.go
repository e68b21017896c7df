package seed

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// Tables whose secondary indexes are dropped for the load. The telemetry
// tables keep their primary keys (the idempotency key) and their BRIN
// indexes (cheap to keep up); the incidents' tables keep their primary keys.
var (
	loadTables = []string{"incidents", "incident_timeline", "incident_evidence",
		"traffic_readings", "camera_events", "emergency_signals", "unit_positions"}
	fkTables = []string{"incident_timeline", "incident_evidence"}
	// Triggers that would count what the seed writes itself: table, trigger.
	// incident_evidence_count (0410) would add each evidence row to a count
	// the incidents' rows already carry, or miss an incident another COPY
	// stream has not committed yet.
	pausedTriggers = [][2]string{{"incident_evidence", "incident_evidence_count"}}
)

const restoreTable = `CREATE TABLE IF NOT EXISTS seed_restore (
	ord  serial PRIMARY KEY,
	kind text NOT NULL,   -- index | fk
	name text NOT NULL,
	tbl  text NOT NULL,
	ddl  text NOT NULL)`

// dropForLoad drops the secondary indexes and foreign keys of the loaded
// tables, writing the DDL that rebuilds them to seed_restore in the same
// transaction. Rebuilding an index once is much cheaper than keeping it
// up row by row (a GiST or trigram GIN most of all), and a foreign key's
// per-row check would also order the three incident streams.
//
// With keepIndexes it only pauses the triggers (pausedTriggers), which
// every load must: the seed writes what they would keep.
func dropForLoad(ctx context.Context, pool *pgxpool.Pool, keepIndexes bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, restoreTable); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		for _, t := range pausedTriggers {
			on := fmt.Sprintf(`ALTER TABLE %s ENABLE TRIGGER %s`, pgx.Identifier{t[0]}.Sanitize(), pgx.Identifier{t[1]}.Sanitize())
			if _, err := tx.Exec(ctx, `INSERT INTO seed_restore (kind, name, tbl, ddl) VALUES ('trigger', $1, $2, $3)`, t[1], t[0], on); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			off := fmt.Sprintf(`ALTER TABLE %s DISABLE TRIGGER %s`, pgx.Identifier{t[0]}.Sanitize(), pgx.Identifier{t[1]}.Sanitize())
			if _, err := tx.Exec(ctx, off); err != nil {
				return fmt.Errorf("seed: pause trigger %s: %w", t[1], err)
			}
		}
		if keepIndexes {
			return nil
		}
		rows, _ := tx.Query(ctx, `SELECT i.relname, t.relname, pg_get_indexdef(i.oid), a.amname
			FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
			JOIN pg_am a ON a.oid = i.relam
			WHERE t.relname = ANY($1) AND t.relnamespace = current_schema()::regnamespace
			  AND NOT x.indisprimary AND NOT x.indisunique
			  AND NOT (t.relkind = 'p' AND a.amname = 'brin')
			ORDER BY 1`, loadTables)
		type ix struct{ Name, Table, DDL, AM string }
		idx, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ix])
		if err != nil {
			return fmt.Errorf("seed: list indexes: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid)
			FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY($1) ORDER BY 1`, fkTables)
		type fk struct{ Name, Table, Def string }
		fks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fk])
		if err != nil {
			return fmt.Errorf("seed: list foreign keys: %w", err)
		}
		for _, f := range fks {
			ddl := fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s %s`, pgx.Identifier{f.Table}.Sanitize(), pgx.Identifier{f.Name}.Sanitize(), f.Def)
			if _, err := tx.Exec(ctx, `INSERT INTO seed_restore (kind, name, tbl, ddl) VALUES ('fk', $1, $2, $3)`, f.Name, f.Table, ddl); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{f.Table}.Sanitize()+` DROP CONSTRAINT `+pgx.Identifier{f.Name}.Sanitize()); err != nil {
				return fmt.Errorf("seed: drop %s: %w", f.Name, err)
			}
		}
		for _, i := range idx {
			ddl := strings.Replace(i.DDL, "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
			if _, err := tx.Exec(ctx, `INSERT INTO seed_restore (kind, name, tbl, ddl) VALUES ('index', $1, $2, $3)`, i.Name, i.Table, ddl); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{i.Name}.Sanitize()); err != nil {
				return fmt.Errorf("seed: drop %s: %w", i.Name, err)
			}
		}
		return nil
	})
}

// restore runs what seed_restore holds: the indexes, jobs at a time, then
// the foreign keys (validated in one pass each) and the paused triggers,
// and empties it.
func restore(ctx context.Context, pool *pgxpool.Pool, jobs int) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('seed_restore') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return err
	}
	rows, _ := pool.Query(ctx, `SELECT kind, name, ddl FROM seed_restore ORDER BY ord`)
	type item struct{ Kind, Name, DDL string }
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[item])
	if err != nil {
		return fmt.Errorf("seed: read seed_restore: %w", err)
	}
	// Big indexes first, so the jobs finish together.
	eg, ictx := errgroup.WithContext(ctx)
	eg.SetLimit(max(1, jobs))
	for _, it := range items {
		if it.Kind != "index" {
			continue
		}
		eg.Go(func() error {
			conn, err := pool.Acquire(ictx)
			if err != nil {
				return err
			}
			defer conn.Release()
			if _, err := conn.Exec(ictx, `SET maintenance_work_mem = '256MB'`); err != nil {
				return err
			}
			defer conn.Exec(context.WithoutCancel(ictx), `RESET maintenance_work_mem`)
			if _, err := conn.Exec(ictx, it.DDL); err != nil {
				return fmt.Errorf("seed: rebuild index %s: %w", it.Name, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, it := range items {
		if it.Kind != "fk" {
			continue
		}
		var has bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1)`, it.Name).Scan(&has); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if has {
			continue
		}
		if _, err := pool.Exec(ctx, it.DDL); err != nil {
			return fmt.Errorf("seed: restore %s: %w", it.Name, err)
		}
	}
	for _, it := range items {
		if it.Kind != "trigger" {
			continue
		}
		if _, err := pool.Exec(ctx, it.DDL); err != nil {
			return fmt.Errorf("seed: restore trigger %s: %w", it.Name, err)
		}
	}
	if _, err := pool.Exec(ctx, `DROP TABLE seed_restore`); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

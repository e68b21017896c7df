package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PartitionedTables are the telemetry tables partitioned by day on ts.
var PartitionedTables = []string{"traffic_readings", "camera_events", "emergency_signals", "unit_positions"}

// Partitions are cut at midnight UTC: one day of data per partition.
func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func partitionName(table string, day time.Time) string {
	return table + "_" + day.Format("20060102")
}

// EnsurePartitions creates the daily partitions of every partitioned table
// that cover [from, to]. It is idempotent and safe to run from several
// instances at once.
func EnsurePartitions(ctx context.Context, pool *pgxpool.Pool, from, to time.Time) error {
	for day := dayStart(from); !day.After(to); day = day.AddDate(0, 0, 1) {
		for _, table := range PartitionedTables {
			name := partitionName(table, day)
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{name}.Sanitize(), pgx.Identifier{table}.Sanitize(),
				day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339))
			if _, err := pool.Exec(ctx, sql); err != nil {
				// Two instances racing on the same partition: the loser
				// sees a duplicate; the partition exists, which is all we need.
				if strings.Contains(err.Error(), "already exists") {
					continue
				}
				return fmt.Errorf("create partition %s: %w", name, err)
			}
		}
	}
	return nil
}

// DropPartitionsBefore drops every daily partition whose whole day lies
// before cutoff and returns the names dropped.
func DropPartitionsBefore(ctx context.Context, pool *pgxpool.Pool, cutoff time.Time) ([]string, error) {
	rows, _ := pool.Query(ctx, `
		SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = ANY($1)`, PartitionedTables)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var dropped []string
	limit := dayStart(cutoff)
	for _, n := range names {
		i := strings.LastIndexByte(n, '_')
		day, err := time.Parse("20060102", n[i+1:])
		if err != nil || !day.AddDate(0, 0, 1).Before(limit.Add(time.Nanosecond)) {
			continue
		}
		if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{n}.Sanitize()); err != nil {
			return dropped, fmt.Errorf("drop partition %s: %w", n, err)
		}
		dropped = append(dropped, n)
	}
	return dropped, nil
}

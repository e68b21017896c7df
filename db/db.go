package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig shapes one pool. iocd opens two on the same database: one
// for ingest and the alert engine, one for the API, so that no number of
// slow API queries can take the connections ingest writes with.
type PoolConfig struct {
	// MaxConns and MinConns: 0 means 8 and 4 (MinConns are kept open and
	// warm, see registerGeometry).
	MaxConns, MinConns int32
	// StatementTimeout, if positive, is the server-side limit on every
	// statement the pool runs (SQLSTATE 57014 when it strikes).
	StatementTimeout time.Duration
	// AppName shows in pg_stat_activity.
	AppName string
}

// Open connects a pool with the default shape and checks the server
// answers. It does not migrate.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return OpenWith(ctx, url, PoolConfig{})
}

// OpenWith is Open with a chosen shape.
func OpenWith(ctx context.Context, url string, pc PoolConfig) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if pc.MaxConns <= 0 {
		pc.MaxConns = 8
	}
	if pc.MinConns <= 0 {
		pc.MinConns = 4
	}
	cfg.MaxConns = max(cfg.MaxConns, pc.MaxConns)
	cfg.MinConns = min(max(cfg.MinConns, pc.MinConns), cfg.MaxConns)
	if pc.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(pc.StatementTimeout.Milliseconds())
	}
	if pc.AppName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = pc.AppName
	}
	cfg.HealthCheckPeriod = 5 * time.Second
	cfg.AfterConnect = registerGeometry
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// registerGeometry teaches pgx PostGIS's geometry type: its binary form is
// EWKB, so []byte values from go-geom's ewkb package pass through as they
// are, in queries and in COPY. Before PostGIS is installed (a new database
// that Migrate has not run on yet) there is nothing to register.
func registerGeometry(ctx context.Context, conn *pgx.Conn) error {
	var oid uint32
	err := conn.QueryRow(ctx, `SELECT coalesce(to_regtype('geometry')::oid, 0)`).Scan(&oid)
	if err != nil || oid == 0 {
		return err
	}
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "geometry", OID: oid, Codec: pgtype.ByteaCodec{}})
	// A backend's first geography call loads PostGIS's spatial reference
	// caches: about 20 ms, measured. Pay it here, not on the first
	// emergency signal the connection carries (the correlation query
	// measures distances on the sphere).
	_, err = conn.Exec(ctx, `SELECT ST_DWithin('SRID=4326;POINT(105.85 21.03)'::geography, 'SRID=4326;POINT(105.86 21.03)'::geography, 1, false)`)
	return err
}

// Package dbtest gives each test its own PostgreSQL database with PostGIS
// and the whole schema applied, so tests run in parallel without sharing
// rows. The first call in a test binary builds a template database (once
// per schema version, shared across packages); each test then clones it,
// which takes tens of milliseconds instead of seconds.
//
// IOC_TEST_DATABASE_URL names the server's maintenance database (default
// postgres://postgres@127.0.0.1:5432/postgres). With IOC_TEST_ALLOW_SKIP=1
// a test skips when the server is unreachable; otherwise it fails, as in CI.
package dbtest

import (
	"errors"

	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/db"
)

var (
	templateOnce sync.Once
	templateMu   sync.Mutex // guards templateName after templateOnce
	templateName string
	templateErr  error
)

// AdminURL is the maintenance database tests create their databases from.
func AdminURL() string {
	if u := os.Getenv("IOC_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres"
}

// New returns a pool on a fresh, migrated database and its URL (for child
// processes). The database is dropped when the test ends.
func New(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	templateOnce.Do(func() { templateName, templateErr = buildTemplate(ctx) })
	if templateErr != nil {
		if os.Getenv("IOC_TEST_ALLOW_SKIP") == "1" {
			t.Skipf("no test database: %v", templateErr)
		}
		t.Fatalf("test database template: %v", templateErr)
	}
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("connect admin: %v", err)
	}
	defer admin.Close(ctx)
	name := "ioc_test_" + randomHex(6)
	if err := createFromTemplate(ctx, admin, name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	dbURL := withDatabase(AdminURL(), name)
	pool, err := db.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	now := time.Now()
	if err := db.EnsurePartitions(ctx, pool, now.AddDate(0, 0, -8), now.AddDate(0, 0, 2)); err != nil {
		t.Fatalf("partitions: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, AdminURL()); err == nil {
			c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
			c.Close(ctx)
		}
	})
	return pool, dbURL
}

// createFromTemplate clones the template. Another checkout with another
// schema may have dropped it as stale (see buildTemplate) while this test
// binary ran: then it is built again, once per drop.
func createFromTemplate(ctx context.Context, admin *pgx.Conn, name string) error {
	templateMu.Lock()
	tmpl := templateName
	templateMu.Unlock()
	_, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "3D000" {
		return err
	}
	templateMu.Lock()
	if templateName == tmpl {
		if templateName, err = buildTemplate(ctx); err != nil {
			templateMu.Unlock()
			return err
		}
	}
	tmpl = templateName
	templateMu.Unlock()
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl))
	return err
}

// buildTemplate creates (once per schema version) a migrated template
// database. Concurrent test binaries serialise on an advisory lock.
func buildTemplate(ctx context.Context) (string, error) {
	migs, err := db.Migrations()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range migs {
		h.Write([]byte(m.Name))
		h.Write([]byte(m.SQL))
	}
	name := "ioc_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]

	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(7411)`); err != nil {
		return "", err
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7411)`)
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_wip"
	admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building))
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return "", err
	}
	pool, err := db.Open(ctx, withDatabase(AdminURL(), building))
	if err != nil {
		return "", err
	}
	_, err = db.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, name)); err != nil {
		return "", err
	}
	// Templates of older schemas are dead weight: drop those not in use
	// (a plain DROP fails, harmlessly, on one another checkout is using).
	rows, _ := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'ioc\_tmpl\_%' AND datname <> $1`, name)
	stale, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, old := range stale {
		admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{old}.Sanitize())
	}
	return name, nil
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

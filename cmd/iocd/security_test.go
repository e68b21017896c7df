package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"ioc/auth"
	"ioc/config"
	"ioc/db/dbtest"
)

func TestUsersCommand(t *testing.T) {
	pool, dbURL := dbtest.New(t)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := usersCommand(ctx, cfg, args, strings.NewReader(stdin), &out, quietLog())
		return out.String(), err
	}
	if _, err := run("first-admin-secret\n", "add", "--name", "Chief", "--role", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	out, err := run("", "add", "--name", "op7", "--role", "operator", "--wards", "00004,00008", "--generate-password")
	if err != nil || !strings.Contains(out, "shown once") {
		t.Fatalf("generate: %v %q", err, out)
	}
	out, err = run("", "list")
	if err != nil || !strings.Contains(out, "chief") || !strings.Contains(out, "00004,00008") || strings.Contains(out, "argon2") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	store := auth.NewStore(pool, auth.HashParams{}, 1)
	if _, _, err := store.CheckLogin(ctx, "chief", "first-admin-secret"); err != nil {
		t.Fatalf("password from stdin: %v", err)
	}
	if _, err := run("a-second-secret-pw\n", "passwd", "--name", "chief", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CheckLogin(ctx, "chief", "a-second-secret-pw"); err != nil {
		t.Fatalf("after passwd: %v", err)
	}
	if _, err := run("", "disable", "--name", "op7"); err != nil {
		t.Fatal(err)
	}
	// The last city-wide admin cannot be disabled or narrowed.
	if _, err := run("", "disable", "--name", "chief"); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("disabling the last admin: %v", err)
	}
	if _, err := run("", "set", "--name", "chief", "--wards", "00004"); err == nil {
		t.Fatal("scoping the last admin accepted")
	}

	for _, bad := range [][]string{
		{"add", "--name", "x' OR 1=1", "--role", "operator", "--generate-password"},
		{"add", "--name", "eve", "--role", "root", "--generate-password"},
		{"add", "--name", "eve", "--role", "operator"},
		{"add", "--name", "eve", "--role", "operator", "--wards", "4;DROP TABLE users", "--generate-password"},
		{"add", "--name", "chief", "--role", "operator", "--generate-password"},
		{"passwd", "--name", "nobody", "--generate-password"},
		{"frobnicate"},
		{"add", "--bogus"},
	} {
		if _, err := run("", bad...); err == nil {
			t.Errorf("users %q accepted", bad)
		}
	}
	if _, err := run("short\n", "add", "--name", "eve", "--role", "operator", "--password-stdin"); err == nil {
		t.Error("short password accepted")
	}
	es, err := auth.NewAuditor(pool).List(ctx, auth.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, e := range es {
		if strings.HasPrefix(e.Actor, "cli") {
			n++
		}
	}
	if n != 4 { // 2 adds, passwd, disable; nothing for refused commands
		t.Errorf("%d CLI audit entries, want 4: %+v", n, es)
	}
}

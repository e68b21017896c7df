package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
	"ioc/auth"
	"ioc/config"
)

// setupSecurity puts authentication, the role policy, security headers,
// CSRF checks and the refusal audit in front of every route of srv,
// registers the login, logout, me, users, tokens and audit routes, and
// creates the first admin when there are no accounts. The returned run
// deletes expired sessions until its context ends.
//
// Call it after the schema is migrated; routes may be registered on srv
// before or after.
func setupSecurity(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, srv *api.Server, log *slog.Logger) (run func(context.Context) error, err error) {
	sec, err := auth.New(auth.Config{}, pool, log.With("part", "auth"))
	if err != nil {
		return nil, err
	}
	if err := sec.Bootstrap(ctx, cfg.BootstrapAdminPasswordFile, os.Stderr); err != nil {
		return nil, err
	}
	sec.Install(srv)
	return sec.Run, nil
}

package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ioc/api"
	"ioc/auth"
	"ioc/config"
)

// authConfig carries iocd's settings into the security layer.
func authConfig(cfg config.Config) auth.Config {
	return auth.Config{
		SessionTTL:      cfg.SessionTTL.Std(),
		HashConcurrency: cfg.HashConcurrency,
		HashWait:        cfg.HashWait.Std(),
		Login: auth.LoginLimits{
			AccountFree:     cfg.LoginAccountFree,
			AccountDelay:    cfg.LoginAccountDelay.Std(),
			AccountMaxDelay: cfg.LoginAccountMaxDelay.Std(),
			AddrMax:         cfg.LoginAddrMax,
			AddrMaxDelay:    cfg.LoginAddrMaxDelay.Std(),
			Window:          cfg.LoginWindow.Std(),
		},
		AllowedOrigins: cfg.AllowedOrigins,
		Now:            clock(cfg),
		TrustedProxies: cfg.TrustedProxies,
	}
}

// setupSecurity puts authentication, the role policy, security headers,
// CSRF checks and the refusal audit in front of every route of srv,
// registers the login, logout, me, users, tokens and audit routes, and
// creates the first admin when there are no accounts. The returned run
// deletes expired sessions until its context ends.
//
// Call it after the schema is migrated; routes may be registered on srv
// before or after.
func setupSecurity(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, srv *api.Server, log *slog.Logger) (*auth.Service, error) {
	sec, err := auth.New(authConfig(cfg), pool, log.With("part", "auth"))
	if err != nil {
		return nil, err
	}
	if err := sec.Bootstrap(ctx, cfg.BootstrapAdminPasswordFile, os.Stderr); err != nil {
		return nil, err
	}
	sec.Install(srv)
	warnRemoteMetrics(cfg, log)
	return sec, nil
}

// warnRemoteMetrics: config refuses a non-loopback metrics_addr unless
// metrics_allow_remote is set; when it is, say at every start that
// profiles are open to the network.
func warnRemoteMetrics(cfg config.Config, log *slog.Logger) {
	if cfg.MetricsAddr == "" {
		return
	}
	host, _, _ := net.SplitHostPort(cfg.MetricsAddr)
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return
	}
	log.Warn("metrics_addr is not a loopback address: /metrics and /debug/pprof there need no credentials; "+
		"anyone who can reach it can read profiles and traces of this process", "metrics_addr", cfg.MetricsAddr)
}

// clock is the instance's now: the real clock, shifted by clock_offset
// (the fault suite's skewed instance); nil (each part's default,
// time.Now) when there is no offset.
func clock(cfg config.Config) func() time.Time {
	off := cfg.ClockOffset.Std()
	if off == 0 {
		return nil
	}
	return func() time.Time { return time.Now().Add(off) }
}

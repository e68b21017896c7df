package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"ioc/alerts"
	"ioc/api"
	"ioc/auth"
	"ioc/config"
	"ioc/db"
	"ioc/geo"
	"ioc/ingest"
	"ioc/streams"
)

// app is one iocd instance: every long-running part, built and wired.
type app struct {
	cfg  config.Config
	log  *slog.Logger
	pool *pgxpool.Pool
	// apiPool serves the HTTP API's reads, with a statement timeout; pool
	// is ingest's and the alert engine's, out of the API's reach.
	apiPool *pgxpool.Pool
	reg     *prometheus.Registry
	srv     *api.Server
	geo     *geo.Service
	ing     *ingest.Ingester
	sub     *ingest.Subscriber
	// reader is ingest's read API (devices for the OGC API too).
	reader *ingest.Reader
	// alerts is the alert engine, set by setupAlerts.
	alerts  *alerts.Engine
	sec     *auth.Service
	streams *streams.Gateway
	// runs are the parts' Run methods, started together by serve.
	runs map[string]func(context.Context) error
	// observers receive every committed batch of observations, after the
	// unit registry. They run on an ingest writer goroutine: they must
	// return quickly and never block.
	observers []func([]*ingest.Observation)
	// inTx, set once before anything runs, acts on emergency signals
	// inside their ingest transaction (the alert engine's InTx).
	inTx ingest.TxHook
	// closers release what the parts opened (in reverse order), before
	// the database pool.
	closers []func()
}

// newApp connects to PostgreSQL, migrates, and builds every part with its
// routes registered. It starts nothing.
func newApp(ctx context.Context, cfg config.Config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry(), runs: map[string]func(context.Context) error{}}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reg.MustRegister(auth.Collectors()...)
	a.reg.MustRegister(api.Collectors()...)
	pool, err := db.OpenWith(ctx, cfg.DatabaseURL, db.PoolConfig{AppName: "iocd-ingest"})
	if err != nil {
		return nil, err
	}
	a.pool = pool
	ran, err := db.Migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if len(ran) > 0 {
		log.Info("schema migrated", "applied", ran)
		// Connections opened before PostGIS existed lack the geometry type.
		pool.Reset()
	}
	a.apiPool, err = db.OpenWith(ctx, cfg.DatabaseURL, db.PoolConfig{MaxConns: int32(cfg.APIMaxConns), MinConns: 1,
		StatementTimeout: cfg.APIStatementTimeout.Std(), AppName: "iocd-api"})
	if err != nil {
		pool.Close()
		return nil, err
	}

	a.geo, err = geo.New(ctx, geo.Config{
		AreasFile: cfg.AreasFile, CityFile: cfg.CityFile, ServiceMarginM: cfg.ServiceAreaMarginM,
		RedisURL: cfg.RedisURL, Registerer: a.reg,
	}, pool, log.With("part", "geo"))
	if err != nil {
		a.close()
		return nil, err
	}
	a.runs["geo"] = a.geo.Run
	a.geo.Units().SetLimits(cfg.UnitsMax, cfg.UnitExpiry.Std())
	a.reg.MustRegister(geo.UnitCollectors()...)

	icfg := ingest.Config{
		Limits: ingest.Limits{Prefix: cfg.MQTTTopicPrefix, MaxPayloadBytes: cfg.MaxPayloadBytes, MaxBatchItems: cfg.MaxBatchItems,
			LateWindow: cfg.LateWindow.Std(), FutureSkew: cfg.FutureSkew.Std()},
		BatchSize: cfg.IngestBatchSize, BatchWait: cfg.IngestBatchWait.Std(), Buffer: cfg.IngestBuffer,
		Writers: cfg.IngestWriters, TouchInterval: cfg.DeviceTouchInterval.Std(), RetentionDays: cfg.RetentionDays,
		Wards: a.geo.Wards(), Registerer: a.reg, OnCommit: a.observed, Now: clock(cfg),
		RequireRegistered: cfg.RequireRegisteredDevices, DeviceStateMax: cfg.DeviceStateMax, DeviceStateTTL: cfg.DeviceStateTTL.Std(),
		RejectsMaxAge: cfg.RejectsMaxAge.Std(), RejectsMaxRows: cfg.RejectsMaxRows, RejectsPruneEvery: cfg.RejectsPruneInterval.Std(),
		InTx: func(ctx context.Context, tx pgx.Tx, obs []*ingest.Observation) (func(), error) {
			if a.inTx == nil {
				return nil, nil
			}
			return a.inTx(ctx, tx, obs)
		},
	}
	if area := a.geo.ServiceArea(); area != nil {
		icfg.Area = area // a nil *ServiceArea must not become a non-nil interface
	}
	if a.ing, err = ingest.New(icfg, pool, log.With("part", "ingest")); err != nil {
		a.close()
		return nil, err
	}
	a.runs["ingest"] = a.ing.Run
	// Hourly and daily telemetry rollups (GET /devices/{id}/telemetry?bucket=1h|1d).
	a.runs["rollups"] = ingest.NewRollups(pool, ingest.RollupConfig{Backfill: time.Duration(cfg.RetentionDays) * 24 * time.Hour},
		a.reg, log.With("part", "rollups")).Run

	var tlsConf *tls.Config
	if cfg.MQTTCAFile != "" || cfg.MQTTCertFile != "" {
		if tlsConf, err = auth.MQTTTLSConfig(cfg.MQTTCAFile, cfg.MQTTCertFile, cfg.MQTTKeyFile); err != nil {
			a.close()
			return nil, err
		}
	}
	a.sub, err = ingest.NewSubscriber(ingest.MQTTConfig{URL: cfg.MQTTURL, ClientID: cfg.MQTTClientID,
		Prefix: cfg.MQTTTopicPrefix, SharedGroup: cfg.MQTTSharedGroup, TLS: tlsConf,
		MaxHeldBytes: int64(cfg.IngestMaxHeldBytes)}, a.ing, log.With("part", "mqtt"))
	if err != nil {
		a.close()
		return nil, err
	}
	a.runs["mqtt"] = a.sub.Run

	a.srv = api.New(cfg.HTTPAddr, log.With("part", "http"))
	a.srv.SetHeavyLimit(cfg.APIHeavyPerCaller)
	a.srv.SetRequestTimeout(cfg.APIStatementTimeout.Std() + 5*time.Second)
	a.routes()
	if err := setupDashboards(a); err != nil {
		a.close()
		return nil, err
	}
	if err := setupAlerts(ctx, cfg, a); err != nil {
		a.close()
		return nil, err
	}
	if err := setupOGC(a); err != nil {
		a.close()
		return nil, err
	}
	a.sec, err = setupSecurity(ctx, cfg, pool, a.srv, log)
	if err != nil {
		a.close()
		return nil, err
	}
	a.runs["security"] = a.sec.Run
	if err := setupStreams(cfg, a); err != nil {
		a.close()
		return nil, err
	}
	a.runs["http"] = a.srv.Run
	if cfg.MetricsAddr != "" {
		a.runs["metrics"] = a.serveMetrics
	}
	return a, nil
}

func (a *app) routes() {
	a.srv.HandlePublic("GET", "/healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	a.srv.HandlePublic("GET", "/readyz", http.HandlerFunc(a.ready))
	// Unknown API paths answer in the contract's error shape, not plain text.
	a.srv.HandlePublic("", "/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.Error(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path)
	}))
	a.srv.Handle("GET", "/metrics", auth.ActMetricsRead, a.metricsHandler().ServeHTTP)
	rd := ingest.NewReader(a.apiPool, a.geo.WardName, a.log.With("part", "api"))
	a.reader = rd
	rd.Registry = a.ing // registrations reach this instance's ingest at once
	rd.Register(a.srv)
	a.reader = rd
	a.geo.Register(a.srv)
}

func (a *app) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
}

// ready: the database answers, ingest's writes succeed (a missing
// permission, table or column keeps them failing while the database
// answers pings), and the broker session is up with its subscription
// granted.
func (a *app) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "ingest": "ok", "mqtt": "ok", "streams": "ok"}
	status := http.StatusOK
	if err := a.pool.Ping(ctx); err != nil {
		checks["database"], status = "unreachable", http.StatusServiceUnavailable
	}
	if err := a.ing.Healthy(); err != nil {
		// The log has the error itself; the public answer names the state.
		checks["ingest"], status = "writes_failing", http.StatusServiceUnavailable
	}
	if err := a.sub.Healthy(); err != nil {
		checks["mqtt"], status = "not_subscribed", http.StatusServiceUnavailable
		if errors.Is(err, ingest.ErrNotConnected) {
			checks["mqtt"] = "disconnected"
		}
	}
	if a.streams != nil {
		if err := a.streams.Ready(); err != nil {
			checks["streams"], status = "incident_events_down", http.StatusServiceUnavailable
		}
		if err := a.streams.FanoutReady(); err != nil {
			// Degraded, not unready: this instance still serves its own
			// updates and every incident event.
			checks["streams_fanout"] = "redis_down"
		}
	}
	api.JSON(w, status, checks)
}

func (a *app) serveMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	// Profiles for operators, on the internal listener only.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &http.Server{Addr: a.cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics listener: %w", err)
	case <-ctx.Done():
		return s.Close()
	}
}

// observed receives every committed batch: responder positions go to the
// unit registry (nearest-unit answers), then to the observers.
func (a *app) observed(obs []*ingest.Observation) {
	units := a.geo.Units()
	for _, o := range obs {
		if o.Kind != ingest.KindUnit {
			continue
		}
		p := geo.UnitPosition{ID: o.DeviceID, Kind: o.UnitKind, Status: o.Status, Lon: o.Lon, Lat: o.Lat, TS: o.TS}
		if o.HasSpeed {
			v := o.SpeedKmh
			p.SpeedKmh = &v
		}
		if o.HasHeading {
			v := o.HeadingDeg
			p.HeadingDeg = &v
		}
		units.Observe(p)
	}
	for _, f := range a.observers {
		f(obs)
	}
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	if a.geo != nil {
		a.geo.Close()
	}
	if a.apiPool != nil {
		a.apiPool.Close()
	}
	a.pool.Close()
}

// serve runs every part until a signal or a part's failure, then gives the
// rest 15 s to stop.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	log.Info("iocd starting", "http", cfg.HTTPAddr, "mqtt_topic", a.sub.Topic(), "redis", cfg.RedisURL != "")
	g, gctx := errgroup.WithContext(ctx)
	for name, run := range a.runs {
		g.Go(func() error {
			if err := run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-gctx.Done():
	}
	select {
	case err := <-done:
		log.Info("iocd stopped")
		return err
	case <-time.After(15 * time.Second):
		return errors.New("shutdown timed out after 15 s")
	}
}

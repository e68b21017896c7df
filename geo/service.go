package geo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// Config is what the geo service needs; iocd fills it from config.Config.
type Config struct {
	AreasFile      string  // IOC_AREAS_FILE: imported at start when the areas table is empty
	CityFile       string  // city outline for the service area; empty: no service area
	ServiceMarginM float64 // metres around the outline still served
	// HospitalsFile: empty means hospitals.geojson next to AreasFile or
	// CityFile, when there is one.
	HospitalsFile string
	RedisURL      string                // IOC_REDIS_URL; empty: PostgreSQL alone keeps instances in step
	Registerer    prometheus.Registerer // nil: prometheus.DefaultRegisterer
	FenceLimits   *GeofenceLimits       // nil: DefaultGeofenceLimits within 0.5° of the service area
}

// Service bundles the geo state of one iocd instance.
type Service struct {
	log       *slog.Logger
	areas     *areaSet
	area      *ServiceArea // nil without CityFile
	fences    *Geofences
	units     *Units
	hospitals *Hospitals // nil without a hospitals file
	redis     *redis.Client
}

// New loads the areas (importing AreasFile into an empty table), the
// service area, hospitals, geofences and the last known unit states.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, log *slog.Logger) (*Service, error) {
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	if err := RegisterMetrics(reg); err != nil {
		return nil, err
	}
	s := &Service{log: log}
	wards, imported, err := EnsureAreas(ctx, pool, cfg.AreasFile)
	if err != nil {
		return nil, err
	}
	if imported {
		log.Info("areas imported at start", "file", cfg.AreasFile, "areas", len(wards))
	}
	if len(wards) == 0 {
		log.Warn("no areas: observations get no ward; run `iocd areas import FILE` or set IOC_AREAS_FILE")
	}
	if s.areas, err = newAreaSet(wards); err != nil {
		return nil, err
	}
	if cfg.CityFile != "" {
		if s.area, err = LoadServiceArea(cfg.CityFile, cfg.ServiceMarginM); err != nil {
			return nil, err
		}
	}
	if hf := hospitalsFile(cfg); hf != "" {
		if s.hospitals, err = LoadHospitals(hf, s.areas.index); err != nil {
			return nil, err
		}
	}
	lim := DefaultGeofenceLimits()
	if cfg.FenceLimits != nil {
		lim = *cfg.FenceLimits
	} else if s.area != nil {
		b := s.area.grid.box
		lim.Region = bbox{b.minX - 0.5, b.minY - 0.5, b.maxX + 0.5, b.maxY + 0.5}
	}
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("geo: redis url: %w", err)
		}
		s.redis = redis.NewClient(opt)
	}
	s.fences = NewGeofences(pool, s.redis, lim, log)
	if err := s.fences.Load(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.units = NewUnits(pool, s.areas.index, log)
	if err := s.units.Load(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func hospitalsFile(cfg Config) string {
	if cfg.HospitalsFile != "" {
		return cfg.HospitalsFile
	}
	for _, f := range []string{cfg.AreasFile, cfg.CityFile} {
		if f == "" {
			continue
		}
		p := filepath.Join(filepath.Dir(f), "hospitals.geojson")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Wards is the ward index (never nil; empty without areas).
func (s *Service) Wards() *WardIndex { return s.areas.index }

// ServiceArea is nil when no city outline was configured.
func (s *Service) ServiceArea() *ServiceArea { return s.area }

// Geofences is the geofence store and index.
func (s *Service) Geofences() *Geofences { return s.fences }

// Units is the responder unit registry; ingest calls Units().Observe.
func (s *Service) Units() *Units { return s.units }

// Hospitals is nil without a hospitals file.
func (s *Service) Hospitals() *Hospitals { return s.hospitals }

// Run keeps geofences in step across instances and flushes unit states
// until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.fences.Run(ctx) })
	g.Go(func() error { return s.units.Run(ctx) })
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Close releases the Redis client.
func (s *Service) Close() {
	if s.redis != nil {
		s.redis.Close()
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"ioc/config"
	"ioc/db"
	"ioc/geo"
)

// runAreas implements `iocd areas import FILE.geojson`: it replaces the
// areas table with the file's wards (one transaction) and prints progress
// on stderr. Running instances pick the new areas up at their next start.
func runAreas(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	if len(args) != 2 || args[0] != "import" {
		return errors.New("usage: iocd areas import FILE.geojson")
	}
	file := args[1]
	start := time.Now()
	fmt.Fprintf(os.Stderr, "areas: reading %s\n", file)
	wards, err := geo.LoadWards(file)
	if err != nil {
		return err
	}
	ix := geo.NewWardIndex(wards)
	if ix.Len() != len(wards) {
		return fmt.Errorf("areas: %d of %d features have a usable polygon or a unique code", ix.Len(), len(wards))
	}
	fmt.Fprintf(os.Stderr, "areas: %d areas decoded in %v\n", len(wards), time.Since(start).Round(time.Millisecond))
	pool, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := db.Migrate(ctx, pool); err != nil {
		return err
	}
	err = geo.ImportAreas(ctx, pool, wards, func(done, total int) {
		fmt.Fprintf(os.Stderr, "areas: %d/%d written (%d%%)\n", done, total, done*100/total)
	})
	if err != nil {
		return err
	}
	log.Info("areas imported", "file", file, "areas", len(wards), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

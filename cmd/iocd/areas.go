package main

import (
	"context"
	"errors"
	"log/slog"

	"ioc/config"
)

// runAreas is replaced by the geo work (iocd areas import FILE.geojson).
func runAreas(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	return errors.New("areas: not built yet")
}

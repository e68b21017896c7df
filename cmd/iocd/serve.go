package main

import (
	"context"
	"log/slog"

	"ioc/config"
)

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	<-ctx.Done()
	return nil
}

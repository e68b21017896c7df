package main

import (
	"context"
	"errors"
	"log/slog"

	"ioc/config"
)

// runUsers is replaced by the security work (iocd users add|list|disable|passwd).
func runUsers(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	return errors.New("users: not built yet")
}

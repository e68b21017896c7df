package auth

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// BootstrapAdmin is the account Bootstrap creates.
const BootstrapAdmin = "admin"

// Bootstrap makes sure the first start leaves a way in without a default
// password. When there are no accounts at all it creates "admin" with:
//   - the password in passwordFile, if given (a deployment secret), or
//   - a random password written once to out (stderr), never to the log.
//
// When accounts exist it does nothing. Several instances starting at once
// create one admin; only the one that did prints a password.
func (s *Service) Bootstrap(ctx context.Context, passwordFile string, out io.Writer) error {
	n, err := s.Store.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if n > 0 {
		return nil
	}
	password := ""
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("bootstrap admin password file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		password = RandomPassword()
	}
	created, err := s.Store.AddFirstAdmin(ctx, BootstrapAdmin, password)
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if !created {
		return nil
	}
	src := "password from " + passwordFile
	if passwordFile == "" {
		src = "one-time password printed to stderr"
		fmt.Fprintf(out, "\n*** iocd: no accounts existed; created %q with password:\n\n    %s\n\n"+
			"*** It is shown only now. Sign in and change it (POST /api/v1/me/password or `iocd users passwd`).\n\n",
			BootstrapAdmin, password)
	}
	if err := s.Auditor.Record(ctx, Entry{Actor: "system", Action: AuditBootstrap, Target: "user/" + BootstrapAdmin,
		Detail: map[string]any{"source": src}}); err != nil {
		return err
	}
	s.log.Warn("created the first admin account", "name", BootstrapAdmin, "source", src)
	return nil
}

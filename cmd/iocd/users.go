package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgconn"

	"ioc/auth"
	"ioc/config"
	"ioc/db"
)

const usersUsage = `iocd users: manage control-room accounts

  iocd users add --name N --role R [--wards 00004,00008] (--password-stdin | --generate-password)
  iocd users list
  iocd users disable --name N
  iocd users enable --name N
  iocd users passwd --name N (--password-stdin | --generate-password)
  iocd users set --name N [--role R] [--wards CODES|all]

Roles: operator, dispatcher, analyst, admin. --wards limits the account to
those wards (5-digit codes); without it the account sees the whole city.
--password-stdin reads the password from the first line of standard input;
--generate-password makes a random one and prints it once. Disabling,
passwd and set end the account's sessions. Every change is audited as
cli:<os user>.`

// runUsers is `iocd users ...`.
func runUsers(ctx context.Context, cfg config.Config, args []string, log *slog.Logger) error {
	return usersCommand(ctx, cfg, args, os.Stdin, os.Stdout, log)
}

func usersCommand(ctx context.Context, cfg config.Config, args []string, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, usersUsage)
		if len(args) == 0 {
			return errors.New("users: say what to do")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("iocd users "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "account name")
	role := fs.String("role", "", "operator, dispatcher, analyst or admin")
	wards := fs.String("wards", "", "comma-separated ward codes; 'all' clears the scope (set)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	generate := fs.Bool("generate-password", false, "generate a password and print it once")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("users %s: %w\n\n%s", sub, err, usersUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("users %s: unexpected argument %q", sub, fs.Arg(0))
	}
	needName := sub != "list"
	if needName && *name == "" {
		return fmt.Errorf("users %s: --name is required", sub)
	}
	password := func() (string, error) {
		switch {
		case *fromStdin && *generate:
			return "", errors.New("give --password-stdin or --generate-password, not both")
		case *fromStdin:
			line, err := bufio.NewReader(io.LimitReader(stdin, auth.MaxPasswordLen+2)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return "", fmt.Errorf("read password: %w", err)
			}
			return strings.TrimRight(line, "\r\n"), nil
		case *generate:
			return auth.RandomPassword(), nil
		}
		return "", errors.New("give --password-stdin (the password on standard input) or --generate-password")
	}
	var wardList []string
	if *wards != "" && *wards != "all" {
		wardList = strings.Split(*wards, ",")
	}

	pool, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	sec, err := auth.New(auth.Config{}, pool, log)
	if err != nil {
		return err
	}
	actor := "cli"
	if u, err := user.Current(); err == nil {
		actor = "cli:" + u.Username
	}
	audit := func(action, target string, detail any) error {
		return sec.Auditor.Record(ctx, auth.Entry{Actor: actor, Remote: "local", Action: action, Target: target, Detail: detail})
	}

	err = func() error {
		switch sub {
		case "add":
			if *role == "" {
				return errors.New("--role is required")
			}
			pw, err := password()
			if err != nil {
				return err
			}
			u, err := sec.Store.AddUser(ctx, auth.NewUser{Name: *name, Role: *role, Wards: wardList, Password: pw})
			if err != nil {
				return err
			}
			if *generate {
				fmt.Fprintf(stdout, "password for %s (shown once): %s\n", u.Name, pw)
			}
			fmt.Fprintf(stdout, "added %s (%s)\n", u.Name, u.Role)
			return audit(auth.AuditUserAdd, "user/"+u.Name, map[string]any{"role": u.Role, "wards": u.Wards})
		case "list":
			users, err := sec.Store.Users(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tWARDS\tSTATE\tLAST LOGIN")
			for _, u := range users {
				w, state, last := "all", "active", "-"
				if len(u.Wards) > 0 {
					w = strings.Join(u.Wards, ",")
				}
				if u.Disabled {
					state = "disabled"
				}
				if u.LastLoginAt != nil {
					last = u.LastLoginAt.Format("2006-01-02 15:04:05Z07:00")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, w, state, last)
			}
			return tw.Flush()
		case "disable", "enable":
			off := sub == "disable"
			u, err := sec.Store.UpdateUser(ctx, *name, auth.UserChange{Disabled: &off})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%sd %s\n", sub, u.Name)
			return audit(auth.AuditUserChange, "user/"+u.Name, map[string]any{"disabled": off})
		case "passwd":
			pw, err := password()
			if err != nil {
				return err
			}
			u, err := sec.Store.UpdateUser(ctx, *name, auth.UserChange{Password: &pw})
			if err != nil {
				return err
			}
			if *generate {
				fmt.Fprintf(stdout, "password for %s (shown once): %s\n", u.Name, pw)
			}
			fmt.Fprintf(stdout, "changed the password of %s; its sessions are ended\n", u.Name)
			return audit(auth.AuditPasswd, "user/"+u.Name, nil)
		case "set":
			ch := auth.UserChange{}
			detail := map[string]any{}
			if *role != "" {
				ch.Role = role
				detail["role"] = *role
			}
			if *wards != "" {
				ch.Wards = &wardList
				detail["wards"] = wardList
			}
			if ch.Role == nil && ch.Wards == nil {
				return errors.New("give --role and/or --wards")
			}
			u, err := sec.Store.UpdateUser(ctx, *name, ch)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s is now %s, wards %v\n", u.Name, u.Role, u.Wards)
			return audit(auth.AuditUserChange, "user/"+u.Name, detail)
		}
		return fmt.Errorf("unknown command (add, list, disable, enable, passwd, set)")
	}()
	if err != nil {
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe) && pe.Code == "42P01":
			return fmt.Errorf("users %s: the database has no accounts table yet; run `iocd migrate` first", sub)
		case errors.Is(err, auth.ErrNotFound):
			return fmt.Errorf("users %s: no account named %q", sub, *name)
		case errors.Is(err, auth.ErrExists):
			return fmt.Errorf("users %s: an account named %q exists", sub, *name)
		}
		return fmt.Errorf("users %s: %w", sub, err)
	}
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"ioc/sim/faults"
)

// faultsCmd runs the fault suite (sim/faults) and prints its table.
func faultsCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("iocsim faults", flag.ContinueOnError)
	var cfg faults.Config
	only := fs.String("only", "", "comma-separated fault names (default: all; -list shows them)")
	list := fs.Bool("list", false, "list the faults and exit")
	verbose := fs.Bool("v", false, "copy the services' and iocd's logs to stderr")
	jsonOut := fs.String("json", "", "also write the results as JSON to `FILE`")
	fs.BoolVar(&cfg.Short, "short", false, "the CI version: the same faults, shorter")
	fs.StringVar(&cfg.Dir, "dir", "", "working directory, kept afterwards (default: a temporary one, removed)")
	fs.Float64Var(&cfg.Rate, "rate", 200, "simulator messages per second during each fault")
	fs.IntVar(&cfg.Burst, "burst", 0, "readings published in a burst while iocd is paused in the broker faults (0: 20,000, -short 8,000; -1: none)")
	fs.StringVar(&cfg.IocdLogLevel, "iocd-log-level", "warn", "iocd's log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, f := range faults.Faults() {
			short := ""
			if f.Short {
				short = " (also in -short)"
			}
			fmt.Printf("%-24s %s%s\n", f.Name, f.Note, short)
		}
		return nil
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	cfg.Log = os.Stderr
	if !*verbose {
		cfg.Log = progressOnly{}
	}
	s, err := faults.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	rs := s.Run(ctx)
	faults.WriteTable(os.Stdout, rs)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rs, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	for _, r := range rs {
		if r.Skipped == "" && !r.OK() && !r.DeploymentChoice {
			return fmt.Errorf("fault %s: not every acknowledged message or incident came through", r.Fault)
		}
	}
	return nil
}

// progressOnly passes the suite's own lines to stderr, not the children's.
type progressOnly struct{}

func (progressOnly) Write(b []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(l, "faults: ") {
			os.Stderr.WriteString(l)
		}
	}
	return len(b), nil
}

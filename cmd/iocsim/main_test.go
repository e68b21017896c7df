package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ioc/sim"
)

// The run command end to end over the real broker: flags reach the
// simulator, the summary and the truth are written.
func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	sumPath, truthPath := filepath.Join(dir, "sum.json"), filepath.Join(dir, "truth.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := runCmd(ctx, []string{
		"--prefix", fmt.Sprintf("iocsimcmd-%d", os.Getpid()),
		"--wards", "../../../shared/data/hanoi/wards.geojson",
		"--sensors", "100", "--cameras", "10", "--units", "5", "--sources", "5",
		"--rate", "0", "--count", "300", "--bad-ratio", "0.1", "--seed", "3",
		"--scenarios", "accident@0s", "--truth", truthPath, "--summary", sumPath, "--progress", "0",
	})
	if err != nil {
		t.Skipf("no broker? %v", err)
	}
	b, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	var sum sim.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Total.Sent != 300 || sum.Total.Acked != 300 || sum.Seed != 3 || sum.Devices["traffic"] != 100 || sum.Bad.Sent == 0 {
		t.Errorf("summary %+v", sum)
	}
	if _, err := os.Stat(truthPath); err != nil {
		t.Error(err)
	}
	if err := runCmd(ctx, []string{"--bad-ratio", "2", "--wards", "../../../shared/data/hanoi/wards.geojson"}); err == nil {
		t.Error("bad ratio 2 accepted")
	}
}

// The broker URL iocsim prints carries no password (finding 11).
func TestStartLineRedactsBroker(t *testing.T) {
	for _, broker := range []string{"ssl://iocsim:s3cret@broker:8884", "tcp://broker:1883?password=s3cret"} {
		line := startLine(map[string]int{"traffic": 1}, time.Now(), broker, "city")
		if strings.Contains(line, "s3cret") || !strings.Contains(line, "broker") {
			t.Errorf("start line %q", line)
		}
	}
}

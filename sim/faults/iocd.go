package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildIocd compiles ./cmd/iocd of the module at root into dir.
func BuildIocd(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "iocd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/iocd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/iocd: %v\n%s", err, out)
	}
	return bin, nil
}

// FindRoot walks up from the working directory to the ioc module's root.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module ioc\n") {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("not inside the ioc module")
		}
		dir = up
	}
}

// Iocd is one instance: its process, its own proxies to PostgreSQL, the
// broker and Redis, and its metrics listener.
type Iocd struct {
	Index       int
	PG, MQ, RD  *Proxy // RD is nil without Redis
	metricsAddr string
	httpAddr    string
	p           *proc
}

func (c *Iocd) Start(ctx context.Context) error {
	if err := c.p.start(); err != nil {
		return err
	}
	return c.WaitReady(ctx, 90*time.Second)
}

// WaitReady waits until the instance is subscribed to the broker.
func (c *Iocd) WaitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if v, err := c.Metric("ioc_mqtt_subscribed"); err == nil && v == 1 {
			return nil
		}
		if !c.p.running() {
			return fmt.Errorf("iocd %d exited", c.Index)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iocd %d not subscribed after %s", c.Index, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Iocd) Kill()         { c.p.kill() }
func (c *Iocd) Pause()        { c.p.signal(syscall.SIGSTOP, 0) }
func (c *Iocd) Resume()       { c.p.signal(syscall.SIGCONT, 0) }
func (c *Iocd) Running() bool { return c.p.running() }

// Metric sums every series of one metric name (labels included).
func (c *Iocd) Metric(name string) (float64, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + c.metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return sumMetric(resp.Body, name)
}

func sumMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	var sum float64
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) {
			continue
		}
		rest := l[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

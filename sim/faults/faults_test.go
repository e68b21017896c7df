package faults

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The CI version of the suite: every fault of the short list against real
// services the suite starts itself. Strict on counts (nothing the broker
// acknowledged lost or stored twice, every injected emergency signal one
// incident), generous on time (recovery may take up to two minutes on a
// loaded machine). The full suite is `iocsim faults` (docs/operations.md).
func TestFaultSuiteShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, brokers, Redis and iocd processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var logw io.Writer
	if os.Getenv("IOC_TEST_LOG") == "1" {
		logw = os.Stderr
	}
	// Its own temporary directory (removed by Close): t.TempDir is closed
	// to the postgres user that PostgreSQL runs as under root.
	s, err := New(ctx, Config{Short: true, Log: logw})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs := s.Run(ctx)
	var b strings.Builder
	WriteTable(&b, rs)
	t.Logf("\n%s", b.String())
	if len(rs) == 0 {
		t.Fatal("no fault ran")
	}
	for _, r := range rs {
		f := r.Figures
		switch {
		case r.Err != nil:
			t.Errorf("%s: %v\n%s", r.Fault, r.Err, s.tail())
		case f.Acked < 500:
			t.Errorf("%s: only %d messages acknowledged: the load did not run", r.Fault, f.Acked)
		case f.IncExpected == 0:
			t.Errorf("%s: no emergency signal injected", r.Fault)
		case !r.OK():
			t.Errorf("%s: %+v\n%s", r.Fault, f, s.tail())
		}
		if r.Recovery < 0 && r.Err == nil {
			t.Errorf("%s: did not recover: what was acknowledged before the fault ended was not all committed in time", r.Fault)
		}
	}
}

// The proxy's failure modes, each against a real TCP echo server.
func TestProxyModes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := NewProxy("127.0.0.1:1", ln.Addr().String()) // the first target refuses: failover
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return c, bufio.NewReader(c)
	}
	echo := func(c net.Conn, r *bufio.Reader, within time.Duration) (time.Duration, error) {
		start := time.Now()
		c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return 0, err
		}
		l, err := r.ReadString('\n')
		if err == nil && l != "ping\n" {
			t.Fatalf("echo %q", l)
		}
		return time.Since(start), err
	}

	c, r := dial()
	if _, err := echo(c, r, 2*time.Second); err != nil {
		t.Fatalf("relay through the second target: %v", err)
	}

	p.SetLatency(300 * time.Millisecond)
	if d, err := echo(c, r, 3*time.Second); err != nil || d < 600*time.Millisecond {
		t.Fatalf("with 300 ms each way a round trip took %v (%v), want ≥ 600 ms", d, err)
	}
	p.SetLatency(0)

	p.Partition()
	if _, err := echo(c, r, 500*time.Millisecond); err == nil {
		t.Fatal("an echo crossed a partition")
	}
	p.Heal()
	// The held ping arrives after the heal (the endpoints kept the connection).
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if l, err := r.ReadString('\n'); err != nil || l != "ping\n" {
		t.Fatalf("after the heal: %q, %v", l, err)
	}

	p.Cut()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("a cut connection still reads")
	}
	if c2, err := net.DialTimeout("tcp", p.Addr, 500*time.Millisecond); err == nil {
		c2.Close()
		t.Fatal("a cut proxy accepted a connection")
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c, r = dial()
	if _, err := echo(c, r, 2*time.Second); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}

func TestMapping(t *testing.T) {
	got := mapping(3)
	for _, want := range []string{`"ioc0.city.>", weight: 33%`, `"ioc1.city.>", weight: 33%`, `"ioc2.city.>", weight: 34%`} {
		if !strings.Contains(got, want) {
			t.Errorf("mapping(3) lacks %s:\n%s", want, got)
		}
	}
}

func TestSumMetric(t *testing.T) {
	text := "# HELP x\nioc_a_total{k=\"1\"} 2\nioc_a_total{k=\"2\"} 3\nioc_a_total_other 9\nioc_b 1\n"
	if v, err := sumMetric(strings.NewReader(text), "ioc_a_total"); err != nil || v != 5 {
		t.Fatalf("sum %v, %v; want 5", v, err)
	}
	if _, err := sumMetric(strings.NewReader(text), "ioc_c"); err == nil {
		t.Fatal("a missing metric was found")
	}
}

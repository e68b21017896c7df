// Package brokertest runs a real Mosquitto for tests, configured from the
// project's deploy/mosquitto.conf, on a free port of 127.0.0.1, and stops
// it when the test ends. IOC_TEST_LOG=1 copies the broker's log to the
// test output.
package brokertest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Broker is a running Mosquitto.
type Broker struct {
	URL  string // tcp://127.0.0.1:PORT
	Port int
	cmd  *exec.Cmd
	conf string
}

// ConfigPath is deploy/mosquitto.conf, found from this file's location.
func ConfigPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "mosquitto.conf")
}

// Start runs Mosquitto with deploy/mosquitto.conf on a free port.
func Start(t testing.TB) *Broker {
	t.Helper()
	return StartWith(t, ConfigPath(), nil)
}

// StartWith runs Mosquitto with the given config file, its listener moved
// to a free port, and extra lines appended.
func StartWith(t testing.TB, confPath string, extra []string) *Broker {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
		if bin == "" {
			t.Fatal("mosquitto not installed (apt-get install mosquitto; .ci/run does it)")
		}
	}
	raw, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		l := sc.Text()
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "listener" || f[0] == "pid_file" || f[0] == "log_dest" || f[0] == "persistence_location") {
			continue
		}
		lines = append(lines, l)
	}
	lines = append(lines, fmt.Sprintf("listener %d 127.0.0.1", port), "log_dest stderr")
	lines = append(lines, extra...)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Broker{URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), Port: port, conf: conf}
	b.start(t, bin)
	t.Cleanup(b.Stop)
	return b
}

func (b *Broker) start(t testing.TB, bin string) {
	b.cmd = exec.Command(bin, "-c", b.conf)
	if os.Getenv("IOC_TEST_LOG") == "1" {
		b.cmd.Stdout, b.cmd.Stderr = os.Stderr, os.Stderr
	}
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port), 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mosquitto did not listen on %d", b.Port)
}

// Stop kills the broker.
func (b *Broker) Stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		b.cmd = nil
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

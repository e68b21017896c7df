package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// proc is a child process the suite owns. Its output goes to a log file
// (and to Config.Log when set).
type proc struct {
	name string
	path string
	args []string
	env  []string
	dir  string
	cred *syscall.Credential
	logw io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.logw, p.logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd = cmd
	done := make(chan struct{})
	p.done = done
	go func() { cmd.Wait(); close(done) }()
	return nil
}

// signal sends sig and, for a terminating one, waits for the exit.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if wait == 0 {
		return nil
	}
	select {
	case <-done:
	case <-time.After(wait):
		cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	if p.cmd == cmd {
		p.cmd = nil
	}
	p.mu.Unlock()
	return nil
}

func (p *proc) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %s", addr, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lookBin(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not installed (deploy/setup.sh installs it)", name)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Postgres is a PostgreSQL cluster of the suite's own, from
// /usr/lib/postgresql/15/bin (PostGIS comes from the Debian package). As
// root it runs as the postgres user (PostgreSQL refuses root).
type Postgres struct {
	Port int
	dir  string
	p    *proc
}

const pgBin = "/usr/lib/postgresql/15/bin"

// StartPostgres initdbs a cluster under dir and starts it on a free port.
func StartPostgres(ctx context.Context, dir string, logw io.Writer) (*Postgres, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(pgBin, "initdb"), "-D", data, "-U", "ioc", "--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	pg := &Postgres{Port: port, dir: dir, p: &proc{
		name: "postgres", path: filepath.Join(pgBin, "postgres"), cred: cred, logw: logw,
		args: []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
			// The OS survives every fault here, so its page cache is as
			// good as the disk; commits stay synchronous (a PostgreSQL
			// crash must not lose a commit iocd acknowledged).
			"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
			"-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"},
	}}
	if err := pg.Start(ctx); err != nil {
		return nil, err
	}
	return pg, nil
}

// URL of database name (through addr when not empty, e.g. a proxy).
func (pg *Postgres) URL(name, addr string) string {
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", pg.Port)
	}
	return fmt.Sprintf("postgres://ioc@%s/%s?sslmode=disable", addr, name)
}

// Start starts the server and waits until it accepts queries.
func (pg *Postgres) Start(ctx context.Context) error {
	if err := pg.p.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := pgx.Connect(ctx, pg.URL("postgres", ""))
		if err == nil {
			c.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || !pg.p.running() {
			return fmt.Errorf("postgres did not start: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Crash stops the server the way a crash does: SIGQUIT is PostgreSQL's
// immediate shutdown (every backend quits at once, no checkpoint; the next
// start replays the WAL).
func (pg *Postgres) Crash() { pg.p.signal(syscall.SIGQUIT, 30*time.Second) }

// Stop shuts down cleanly (SIGINT: fast shutdown).
func (pg *Postgres) Stop() { pg.p.signal(syscall.SIGINT, 30*time.Second) }

// CreateDB makes an empty database (dropping one of that name).
func (pg *Postgres) CreateDB(ctx context.Context, name string) error {
	c, err := pgx.Connect(ctx, pg.URL("postgres", ""))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	// A fault run again (TestFaultSuiteShort's retry) starts afresh.
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// Redis is a redis-server without persistence on a free port.
type Redis struct {
	Port int
	p    *proc
}

func StartRedis(ctx context.Context, logw io.Writer) (*Redis, error) {
	bin, err := lookBin("redis-server", "/usr/bin", "/usr/local/bin")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Port: port, p: &proc{name: "redis", path: bin, logw: logw,
		args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"}}}
	return r, r.Start(ctx)
}

func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

func (r *Redis) Start(ctx context.Context) error {
	if err := r.p.start(); err != nil {
		return err
	}
	return waitListening(ctx, r.Addr(), 20*time.Second)
}

func (r *Redis) Kill() { r.p.kill() }

// Broker is an MQTT broker the suite can kill and restart.
type Broker interface {
	Name() string
	// Addrs are the MQTT listeners (one per node).
	Addrs() []string
	// Kill SIGKILLs node i (a single broker: 0).
	Kill(i int)
	// Restart starts node i again with the same configuration and store.
	Restart(ctx context.Context, i int) error
	// Durable: what the broker acknowledged survives Kill.
	Durable() bool
	Close()
}

// rewrite replaces each old address of the deploy file with a new one, and
// the paths.
func rewrite(conf string, repl map[string]string) string {
	for old, nu := range repl {
		conf = strings.ReplaceAll(conf, old, nu)
	}
	return conf
}

// Mosquitto runs deploy/mosquitto.conf with its listener on a free port.
type Mosquitto struct {
	port int
	p    *proc
}

func StartMosquitto(ctx context.Context, root, dir string, logw io.Writer) (*Mosquitto, error) {
	bin, err := lookBin("mosquitto", "/usr/sbin", "/usr/local/sbin")
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "mosquitto.conf"))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && (f[0] == "listener" || f[0] == "log_dest" || f[0] == "pid_file") {
			continue
		}
		lines = append(lines, sc.Text())
	}
	lines = append(lines, fmt.Sprintf("listener %d 127.0.0.1", port), "log_dest stderr")
	if os.Geteuid() == 0 {
		// Started by root, Mosquitto switches to its own user, and that
		// clears the parent-death signal: a suite that dies would leave it
		// running. Staying root keeps it tied to the suite.
		lines = append(lines, "user root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	m := &Mosquitto{port: port, p: &proc{name: "mosquitto", path: bin, args: []string{"-c", conf}, logw: logw}}
	return m, m.Restart(ctx, 0)
}

func (m *Mosquitto) Name() string    { return "mosquitto" }
func (m *Mosquitto) Durable() bool   { return false }
func (m *Mosquitto) Addrs() []string { return []string{fmt.Sprintf("127.0.0.1:%d", m.port)} }
func (m *Mosquitto) Kill(int)        { m.p.kill() }
func (m *Mosquitto) Close()          { m.p.kill() }
func (m *Mosquitto) Restart(ctx context.Context, _ int) error {
	if err := m.p.start(); err != nil {
		return err
	}
	return waitListening(ctx, m.Addrs()[0], 20*time.Second)
}

// NATS runs deploy/nats/nats.conf (one node) or deploy/nats/cluster/n*.conf
// (three), addresses moved to free ports and stores under dir.
type NATS struct {
	nodes []*proc
	mqtt  []string
}

var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// StartNATS starts one node, or the three-node cluster, with the
// instances.conf mapping included when shares > 1.
func StartNATS(ctx context.Context, root, dir string, cluster bool, shares int, logw io.Writer) (*NATS, error) {
	bin, err := lookBin("nats-server", "/usr/sbin", "/usr/local/sbin", "/usr/bin")
	if err != nil {
		return nil, err
	}
	files := []string{filepath.Join(root, "deploy", "nats", "nats.conf")}
	if cluster {
		files = nil
		for i := 1; i <= 3; i++ {
			files = append(files, filepath.Join(root, "deploy", "nats", "cluster", fmt.Sprintf("n%d.conf", i)))
		}
	}
	var raws []string
	repl := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		raws = append(raws, string(b))
		for _, a := range addrRE.FindAllString(string(b), -1) {
			if _, ok := repl[a]; !ok {
				p, err := freePort()
				if err != nil {
					return nil, err
				}
				repl[a] = fmt.Sprintf("127.0.0.1:%d", p)
			}
		}
	}
	n := &NATS{}
	for i, raw := range raws {
		store := filepath.Join(dir, fmt.Sprintf("store%d", i+1))
		conf := addrRE.ReplaceAllStringFunc(raw, func(a string) string { return repl[a] })
		conf = regexp.MustCompile(`store_dir: "[^"]*"`).ReplaceAllString(conf, fmt.Sprintf("store_dir: %q", store))
		if shares > 1 {
			conf += "\n" + mapping(shares) + "\n"
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		m := regexp.MustCompile(`(?s)mqtt \{.*?listen: (127\.0\.0\.1:\d+)`).FindStringSubmatch(conf)
		if m == nil {
			return nil, fmt.Errorf("%s: no mqtt listener", files[i])
		}
		n.mqtt = append(n.mqtt, m[1])
		n.nodes = append(n.nodes, &proc{name: fmt.Sprintf("nats%d", i+1), path: bin, args: []string{"-c", path}, logw: logw})
	}
	for i := range n.nodes {
		if err := n.nodes[i].start(); err != nil {
			n.Close()
			return nil, err
		}
	}
	for i := range n.nodes {
		if err := waitListening(ctx, n.mqtt[i], 30*time.Second); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// mapping is deploy/nats/instances.conf's mapping for n instances.
func mapping(n int) string {
	var b strings.Builder
	b.WriteString("mappings = {\n  \"city.>\": [\n")
	left := 100
	for i := range n {
		w := 100 / n
		if i == n-1 {
			w = left
		}
		left -= w
		fmt.Fprintf(&b, "    { destination: \"ioc%d.city.>\", weight: %d%% }\n", i, w)
	}
	b.WriteString("  ]\n}")
	return b.String()
}

func (n *NATS) Name() string {
	if len(n.nodes) > 1 {
		return "nats-cluster"
	}
	return "nats"
}
func (n *NATS) Durable() bool   { return true }
func (n *NATS) Addrs() []string { return n.mqtt }
func (n *NATS) Kill(i int)      { n.nodes[i].kill() }
func (n *NATS) Restart(ctx context.Context, i int) error {
	if err := n.nodes[i].start(); err != nil {
		return err
	}
	return waitListening(ctx, n.mqtt[i], 60*time.Second)
}
func (n *NATS) Close() {
	for _, p := range n.nodes {
		p.kill()
	}
}

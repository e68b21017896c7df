package load

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux this runs on (reading it needs
// sysconf, that is cgo).
const clockTicks = 100

// Process groups the report shows.
const (
	groupMosquitto = "mosquitto"
	groupPostgres  = "postgres"
	groupIocd      = "iocd"
	groupSelf      = "iocsim"
)

var groups = []string{groupMosquitto, groupPostgres, groupIocd, groupSelf}

// cpuSample is the CPU time of every process of interest at one instant.
type cpuSample struct {
	at    time.Time
	ticks map[int]procTicks // pid → ticks
	// machine-wide jiffies from /proc/stat: busy and total over all cores
	busy, total uint64
	cores       int
}

type procTicks struct {
	group string
	ticks uint64
}

// pids names the processes to watch; 0 means "by command name" (every
// process called mosquitto, or iocd). pgDB, if set, counts only the
// PostgreSQL backends (and autovacuum workers) of that database, with the
// server's shared processes (WAL writer, checkpointer, ...): on a shared
// server, other databases' backends are someone else's load.
type pids struct {
	broker, iocd int
	pgDB         string
}

// sampleCPU reads /proc.
func sampleCPU(p pids) cpuSample {
	s := cpuSample{at: time.Now(), ticks: map[int]procTicks{}}
	self := os.Getpid()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, ticks, ok := readStat(pid)
		if !ok {
			continue
		}
		var g string
		switch {
		case pid == self:
			g = groupSelf
		case p.iocd > 0 && pid == p.iocd, p.iocd <= 0 && comm == "iocd":
			g = groupIocd
		case p.broker > 0 && pid == p.broker, p.broker <= 0 && comm == "mosquitto":
			g = groupMosquitto
		case comm == "postgres" || strings.HasPrefix(comm, "postgres:") || comm == "postmaster":
			if p.pgDB != "" {
				if db, ok := pgDatabase(pid); ok && db != p.pgDB {
					continue
				}
			}
			g = groupPostgres
		default:
			continue
		}
		s.ticks[pid] = procTicks{g, ticks}
	}
	s.busy, s.total, s.cores = readProcStat()
	return s
}

// pgDatabase reads the database of a PostgreSQL backend or autovacuum
// worker from its process title ("postgres: [cluster: ]user db
// host(port) state", "postgres: [cluster: ]autovacuum worker db"); false
// for the server's shared processes.
func pgDatabase(pid int) (string, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "", false
	}
	return pgTitleDatabase(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

func pgTitleDatabase(title string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(title), "postgres: ")
	if !ok {
		return "", false
	}
	f := strings.Fields(rest)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:] // cluster_name
	}
	switch {
	case len(f) >= 3 && f[0] == "autovacuum" && f[1] == "worker":
		return f[2], true
	case len(f) >= 3 && (strings.HasSuffix(f[2], ")") || f[2] == "[local]"):
		return f[1], true
	}
	return "", false
}

// readStat returns the command name and utime+stime of a process.
func readStat(pid int) (string, uint64, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, false
	}
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	comm := string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// After the command: state(3) ... utime(14) stime(15), 1-based in proc(5).
	if len(f) < 13 {
		return "", 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return comm, ut + st, true
}

func readProcStat() (busy, total uint64, cores int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "cpu" {
			for i, x := range f[1:] {
				v, _ := strconv.ParseUint(x, 10, 64)
				total += v
				if i != 3 && i != 4 { // idle, iowait
					busy += v
				}
			}
		} else if strings.HasPrefix(f[0], "cpu") {
			cores++
		}
	}
	return busy, total, cores
}

// cpuPercent is each group's CPU between a and b in percent of one core,
// plus "machine" (all processes) and "other" (the machine minus the
// groups: on a shared machine, everyone else). A process that started
// between the samples counts from zero; one that ended is lost (short-lived
// PostgreSQL backends, if any, are undercounted).
func cpuPercent(a, b cpuSample) map[string]float64 {
	out := map[string]float64{}
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return out
	}
	for _, g := range groups {
		out[g] = 0
	}
	var listed float64
	for pid, pb := range b.ticks {
		var before uint64
		if pa, ok := a.ticks[pid]; ok {
			before = pa.ticks
		}
		if pb.ticks < before {
			continue // pid reused
		}
		pct := float64(pb.ticks-before) / clockTicks / wall * 100
		out[pb.group] += pct
		listed += pct
	}
	if b.total > a.total && b.cores > 0 {
		machine := float64(b.busy-a.busy) / float64(b.total-a.total) * float64(b.cores) * 100
		out["machine"] = machine
		out["other"] = max(0, machine-listed)
	}
	return out
}

// listenerPID finds the process listening on a local TCP port, so that on a
// machine with several brokers (or iocd instances) the right one is
// measured. It returns 0 when it cannot tell (no permission to read other
// processes' descriptors, say).
func listenerPID(port int) int {
	if port <= 0 {
		return 0
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", d.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", d.Name(), "fd", fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// portOf returns the port of a URL such as tcp://127.0.0.1:1883 or
// http://127.0.0.1:9464/metrics, or 0.
func portOf(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(u.Port())
	return p
}

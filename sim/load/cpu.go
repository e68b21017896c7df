package load

import (
	"bytes"
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

// sampleCPU reads /proc. iocdPID > 0 names iocd's process; otherwise a
// process whose command name is "iocd" is taken.
func sampleCPU(iocdPID int) cpuSample {
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
		case iocdPID > 0 && pid == iocdPID, iocdPID <= 0 && comm == "iocd":
			g = groupIocd
		case comm == "mosquitto":
			g = groupMosquitto
		case comm == "postgres" || strings.HasPrefix(comm, "postgres:") || comm == "postmaster":
			g = groupPostgres
		default:
			continue
		}
		s.ticks[pid] = procTicks{g, ticks}
	}
	s.busy, s.total, s.cores = readProcStat()
	return s
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

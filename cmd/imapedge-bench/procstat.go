package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// procStat is the part of /proc/PID/stat the benchmark uses. Times are in
// clock ticks.
type procStat struct {
	pid, ppid, pgid int
	state           byte
	utime, stime    uint64 // the process itself
	cutime, cstime  uint64 // its waited-for children, dead ones included
}

// cpuTicks is everything the process and its reaped children used.
func (p procStat) cpuTicks() uint64 { return p.utime + p.stime + p.cutime + p.cstime }

// parseStat parses the contents of /proc/PID/stat: "pid (comm) state ppid
// pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
// cutime cstime ...". comm may contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(data []byte) (procStat, error) {
	var p procStat
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 1 || end < open {
		return p, errors.New("malformed stat: no (comm)")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:open])))
	if err != nil {
		return p, fmt.Errorf("malformed stat: pid: %w", err)
	}
	p.pid = pid
	f := strings.Fields(string(data[end+1:]))
	// f[0]=state f[1]=ppid f[2]=pgrp ... f[11]=utime f[12]=stime f[13]=cutime f[14]=cstime
	if len(f) < 15 || len(f[0]) != 1 {
		return p, fmt.Errorf("malformed stat: %d fields after comm", len(f))
	}
	p.state = f[0][0]
	ints := []*int{&p.ppid, &p.pgid}
	for i, dst := range ints {
		v, err := strconv.Atoi(f[1+i])
		if err != nil {
			return p, fmt.Errorf("malformed stat field %d: %w", 4+i, err)
		}
		*dst = v
	}
	times := []*uint64{&p.utime, &p.stime, &p.cutime, &p.cstime}
	for i, dst := range times {
		// cutime/cstime are signed in the kernel's format; never negative in practice.
		v, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil || v < 0 {
			return p, fmt.Errorf("malformed stat field %d: %q", 14+i, f[11+i])
		}
		*dst = uint64(v)
	}
	return p, nil
}

// parseVmRSS returns VmRSS in KiB from the contents of /proc/PID/status.
// Kernel threads and zombies have none.
func parseVmRSS(data []byte) (int64, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		return v, err == nil
	}
	return 0, false
}

var (
	tickOnce sync.Once
	tickHz   float64
)

// clockTick is USER_HZ: `getconf CLK_TCK`, or 100 when that fails.
func clockTick() float64 {
	tickOnce.Do(func() {
		tickHz = 100
		out, err := exec.Command("getconf", "CLK_TCK").Output()
		if err != nil {
			return
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			tickHz = float64(v)
		}
	})
	return tickHz
}

// readStat reads /proc/PID/stat ("self" for PID -1).
func readStat(pid int) (procStat, error) {
	name := "self"
	if pid >= 0 {
		name = strconv.Itoa(pid)
	}
	data, err := os.ReadFile("/proc/" + name + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(data)
}

// groupProcs lists the processes of process group pgid.
func groupProcs(pgid int) []procStat {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var out []procStat
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		p, err := readStat(pid)
		if err != nil || p.pgid != pgid {
			continue
		}
		out = append(out, p)
	}
	return out
}

// groupCPU returns the CPU seconds (user+system, with reaped children)
// used so far by every process of group pgid; 0 for pgid 0.
func groupCPU(pgid int) float64 {
	if pgid <= 0 {
		return 0
	}
	var ticks uint64
	for _, p := range groupProcs(pgid) {
		ticks += p.cpuTicks()
	}
	return float64(ticks) / clockTick()
}

// selfCPU returns the CPU seconds used so far by the load generator.
func selfCPU() float64 {
	p, err := readStat(-1)
	if err != nil {
		return 0
	}
	return float64(p.utime+p.stime) / clockTick()
}

// groupRSS returns the summed VmRSS (KiB) of group pgid's processes.
func groupRSS(pgid int) int64 {
	if pgid <= 0 {
		return 0
	}
	var total int64
	for _, p := range groupProcs(pgid) {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/status")
		if err != nil {
			continue
		}
		if v, ok := parseVmRSS(data); ok {
			total += v
		}
	}
	return total
}

// groupCPUPrecise is groupCPU with the live processes' time taken from
// /proc/PID/task/TID/schedstat (nanoseconds) instead of clock ticks: the
// logins scenario measures chunks of a few hundred logins, where one
// 10 ms tick would be several percent. Reaped children still count in
// ticks (the kernel keeps nothing finer for them). A process whose tasks
// cannot be read counts in ticks.
func groupCPUPrecise(pgid int) float64 {
	if pgid <= 0 {
		return 0
	}
	var s float64
	for _, p := range groupProcs(pgid) {
		if ns, ok := taskNanos(p.pid); ok {
			s += float64(ns)/1e9 + float64(p.cutime+p.cstime)/clockTick()
		} else {
			s += float64(p.cpuTicks()) / clockTick()
		}
	}
	return s
}

// taskNanos sums the CPU time of every thread of pid: the first field of
// /proc/PID/task/TID/schedstat. Threads that already exited are not in it;
// the proxies keep theirs for the whole run.
func taskNanos(pid int) (uint64, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	d, err := os.Open(dir)
	if err != nil {
		return 0, false
	}
	defer d.Close()
	tids, err := d.Readdirnames(-1)
	if err != nil || len(tids) == 0 {
		return 0, false
	}
	var sum uint64
	for _, tid := range tids {
		data, err := os.ReadFile(dir + "/" + tid + "/schedstat")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited meanwhile
			}
			return 0, false
		}
		ns, err := parseSchedstat(data)
		if err != nil {
			return 0, false
		}
		sum += ns
	}
	return sum, true
}

// parseSchedstat returns the first field of a schedstat file: time spent
// on the CPU, in nanoseconds.
func parseSchedstat(data []byte) (uint64, error) {
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, errors.New("empty schedstat")
	}
	return strconv.ParseUint(f[0], 10, 64)
}

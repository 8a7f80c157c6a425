//go:build linux

package dovecottest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const supported = true

// instance is one running Dovecot master and its process group.
type instance struct {
	pid     int           // master pid == process group id
	exited  chan struct{} // closed when the master has been reaped
	waitErr error         // set before exited is closed
}

// launch starts "dovecot -F -c conf" in a new process group. The master's
// output goes to out (a file, so that no copying goroutine keeps Wait
// waiting for Dovecot's children).
func launch(bin, conf string, out *os.File) (*instance, error) {
	inst := &instance{exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// PR_SET_PDEATHSIG fires when the thread that forked the child
		// exits, not the process. Keep this goroutine on its thread until
		// the master is gone, so that the signal only comes if the test
		// binary itself dies.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(bin, "-F", "-c", conf)
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		inst.pid = cmd.Process.Pid
		started <- nil
		inst.waitErr = cmd.Wait()
		close(inst.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return inst, nil
}

// stop shuts the instance down gracefully and then kills whatever is left.
//
// Signalling only the master is not enough with Dovecot 2.3.19: the master
// exits after about a second (its shutdown ends with a fixed one-second
// sleep for the log process) and leaves imap processes with logged-in
// clients behind, which notice only ten seconds later. So every process of
// the instance except the log process gets SIGTERM at once: imap processes
// send "* BYE Server shutting down." and log their disconnect, login
// processes close their connections, and the master closes the listeners.
// When nothing but the master and the log process is left, the rest of the
// master's shutdown is that sleep, so stop kills them instead of waiting.
func (inst *instance) stop(timeout time.Duration) {
	signaled := map[int]bool{}
	deadline := time.Now().Add(timeout)
	settled := 0
wait:
	for time.Now().Before(deadline) {
		select {
		case <-inst.exited:
			break wait
		default:
		}
		// Signal every live process of the group except the log process,
		// including any the master forked since the last round.
		others := false
		for _, p := range listProcs() {
			if p.pgid != inst.pid || p.zombie() || isLogProcess(p.pid) {
				continue
			}
			if !signaled[p.pid] {
				_ = syscall.Kill(p.pid, syscall.SIGTERM)
				signaled[p.pid] = true
			}
			if p.pid != inst.pid {
				others = true
			}
		}
		if others {
			settled = 0
		} else if settled++; settled >= 4 {
			// Only the master and the log process have been left for a
			// while; the log process has had a moment to write what the
			// others sent it last.
			break wait
		}
		select {
		case <-inst.exited:
			break wait
		case <-time.After(5 * time.Millisecond):
		}
	}
	inst.kill()
}

func isLogProcess(pid int) bool { return strings.HasSuffix(procTitle(pid), "/log") }

// kill SIGKILLs every process of the instance and waits until they are
// gone (zombies, which hold no sockets, are not waited for: orphans are
// reaped by init).
func (inst *instance) kill() {
	pg := inst.pid
	select {
	case <-inst.exited:
		// The master has been reaped. If its group is empty, its id may
		// belong to someone else by now and must not be signalled.
		if !groupAlive(listProcs(), pg) {
			return
		}
	default:
		// The master (perhaps a zombie not yet reaped by launch's Wait)
		// still holds the group id.
	}
	// Freeze the group so that nothing forks while we look for processes
	// that left the group (Dovecot's processes never do; this is a safety
	// net), then kill those and the group.
	_ = syscall.Kill(-pg, syscall.SIGSTOP)
	escaped := descendantsOutsideGroup(listProcs(), pg)
	for _, pid := range escaped {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-pg, syscall.SIGKILL)

	select {
	case <-inst.exited:
	case <-time.After(stopTimeout):
	}
	deadline := time.Now().Add(stopTimeout)
	for time.Now().Before(deadline) {
		procs := listProcs()
		if !groupAlive(procs, pg) && !anyAlive(procs, escaped) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type procInfo struct {
	pid, ppid, pgid int
	state           byte
}

func (p procInfo) zombie() bool { return p.state == 'Z' || p.state == 'X' || p.state == 'x' }

// listProcs returns all processes from /proc.
func listProcs() []procInfo {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	procs := make([]procInfo, 0, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ..."; comm may contain anything.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 3 || len(f[0]) != 1 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		pgid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		procs = append(procs, procInfo{pid: pid, ppid: ppid, pgid: pgid, state: f[0][0]})
	}
	return procs
}

func procTitle(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	return strings.TrimSpace(string(data))
}

func groupAlive(procs []procInfo, pg int) bool {
	for _, p := range procs {
		if p.pgid == pg && !p.zombie() {
			return true
		}
	}
	return false
}

func anyAlive(procs []procInfo, pids []int) bool {
	for _, p := range procs {
		if p.zombie() {
			continue
		}
		for _, pid := range pids {
			if p.pid == pid {
				return true
			}
		}
	}
	return false
}

// descendantsOutsideGroup returns the live descendants of pid that are not
// in process group pid.
func descendantsOutsideGroup(procs []procInfo, pid int) []int {
	children := map[int][]procInfo{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			queue = append(queue, c.pid)
			if c.pgid != pid && !c.zombie() {
				out = append(out, c.pid)
			}
		}
	}
	return out
}

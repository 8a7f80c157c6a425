package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The reaper is a helper process (`imapedge-bench reap`, in its own
// process group) that cleans up when the suite dies without running its
// own cleanup (SIGKILL, a crash): PR_SET_PDEATHSIG reaches only direct
// children, so nginx's worker and the temporary directories would stay.
// The suite tells it over a pipe which process groups and directories
// exist ("pg N", "dir PATH") and which are gone ("unpg N", "undir PATH");
// "done" ends it quietly. End of input without "done" means the suite
// died: the reaper kills the groups still registered and removes the
// directories.

// reaperClient is the suite's end of the pipe; nil methods are no-ops.
type reaperClient struct {
	mu  sync.Mutex
	w   io.WriteCloser
	cmd *exec.Cmd
}

var reaper *reaperClient

// startReaper starts the helper; on failure the suite runs without it.
func startReaper() (*reaperClient, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "reap")
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a ^C to the terminal must not reach it
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &reaperClient{w: w, cmd: cmd}, nil
}

func (r *reaperClient) send(format string, args ...any) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil {
		fmt.Fprintf(r.w, format+"\n", args...)
	}
}

func (r *reaperClient) addGroup(pgid int)    { r.send("pg %d", pgid) }
func (r *reaperClient) removeGroup(pgid int) { r.send("unpg %d", pgid) }
func (r *reaperClient) addDir(dir string)    { r.send("dir %s", dir) }
func (r *reaperClient) removeDir(dir string) { r.send("undir %s", dir) }

// finish ends the helper after a normal cleanup.
func (r *reaperClient) finish() {
	if r == nil {
		return
	}
	r.send("done")
	r.mu.Lock()
	r.w.Close()
	r.w = nil
	r.mu.Unlock()
	r.cmd.Wait()
}

// reapMain is `imapedge-bench reap` (internal).
func reapMain() error {
	signal.Ignore(os.Interrupt, syscall.SIGHUP, syscall.SIGTERM)
	groups := map[int]bool{}
	dirs := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		switch verb {
		case "done":
			return nil
		case "pg", "unpg":
			n, err := strconv.Atoi(arg)
			if err != nil || n <= 1 {
				continue
			}
			groups[n] = verb == "pg"
		case "dir", "undir":
			base := filepath.Base(arg)
			if filepath.IsAbs(arg) && (strings.HasPrefix(base, "imapedge-bench-") || strings.HasPrefix(base, "dovecottest-")) {
				dirs[arg] = verb == "dir"
			}
		}
	}
	// The suite died without cleaning up.
	for pg, live := range groups {
		if live {
			syscall.Kill(-pg, syscall.SIGKILL)
		}
	}
	for dir, live := range dirs {
		if live {
			os.RemoveAll(dir)
		}
	}
	fmt.Fprintf(os.Stderr, "imapedge-bench reap: the suite died; killed its process groups and removed its directories\n")
	return nil
}

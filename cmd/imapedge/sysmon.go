package main

import "strings"

// Go's runtime has a monitor thread, sysmon. Whenever every P of the
// process is idle it parks in a futex, and the next system call of any
// goroutine wakes it again (runtime.entersyscall), after which it polls
// every 20 µs until the process is idle once more. A proxy at light or
// moderate load on a few cores is idle between almost all of its system
// calls, so it pays one futex wake-up and a few thread switches per
// forwarded chunk: perf showed sysmon's sleeps and wake-ups at about a
// quarter of imapedge's CPU in the NOOP round-trip benchmark and a fifth of
// its CPU per plaintext login (2 cores, Go 1.26).
//
// The runtime skips that parking when GODEBUG has schedtrace > 0; sysmon
// then backs off on its own to one poll every 10 ms while nothing happens
// (about 100 wake-ups a second of an idle process). schedtrace's actual
// job, a one-line scheduler summary on stderr every N ms, is pushed out to
// every 24.8 days (the first one comes at start-up on a host that has been
// up longer than that), and a fatal crash also prints the runtime's
// detailed scheduler dump. GODEBUG is read only at start-up, so "imapedge
// serve" re-executes itself once with it set, unless GODEBUG already names
// schedtrace (the operator's choice wins, e.g. GODEBUG=schedtrace=0 keeps
// the runtime's default).
const quietSysmon = "schedtrace=2147483647"

// quietSysmonEnv returns the environment for the re-executed serve command,
// or nil when none is needed.
func quietSysmonEnv(args, environ []string) []string {
	if len(args) == 0 || args[0] != "serve" {
		return nil
	}
	var out []string
	godebug := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		out = append(out, kv)
	}
	for _, f := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(f, "="); strings.TrimSpace(k) == "schedtrace" {
			return nil
		}
	}
	if godebug != "" {
		godebug += ","
	}
	return append(out, "GODEBUG="+godebug+quietSysmon)
}

// Command imapedge-bench compares imapedge with Dovecot directly, HAProxy
// in TCP mode and nginx's mail proxy, all on loopback on this machine.
//
//	imapedge-bench suite [-quick] [-rounds 3] [-idle 2000] [-idle-full 8000] [-json FILE] [-imapedge PATH]
//	imapedge-bench ab -a OLD -b NEW [-rounds 7] [-logins 3000] [-noops 3000] [-front plain|tls]
//	imapedge-bench authhttp -listen 127.0.0.1:0 -server 127.0.0.1 -port N
//
// suite starts a private Dovecot (proxy/dovecottest), seeds its mailboxes,
// starts HAProxy, nginx (with an in-process auth_http responder) and
// imapedge in front of it, runs every scenario against every target in
// rotating order, prints one JSON line per run and a markdown table of
// medians with imapedge's ratios, and tears everything down, also on
// SIGINT. scripts/bench.sh installs the peers and runs it.
//
// ab compares two imapedge binaries in front of one Dovecot, the two
// taking turns chunk by chunk (logins) and NOOP by NOOP, and prints medians,
// the ratio of CPU per login and the per-round latency differences: for
// measuring one change, where the suite's noise is larger than the effect.
//
// authhttp is the responder nginx's auth_http asks: every request gets
// "Auth-Status: OK" and the given Auth-Server and Auth-Port.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  imapedge-bench suite [-quick] [-rounds 3] [-idle 2000] [-idle-full 8000] [-json FILE] [-imapedge PATH]
  imapedge-bench ab -a OLD -b NEW [-rounds 7] [-logins 3000] [-noops 3000] [-front plain|tls]
  imapedge-bench authhttp -listen 127.0.0.1:0 -server 127.0.0.1 -port N
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "suite":
		err = suiteMain(os.Args[2:])
	case "ab":
		err = abMain(os.Args[2:])
	case "authhttp":
		err = authHTTPMain(os.Args[2:])
	case "reap":
		err = reapMain()
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	cleanup.run()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "imapedge-bench:", err)
		os.Exit(1)
	}
}

// cleanupStack runs teardown functions once, last pushed first, whether
// the suite ends normally, fails or is interrupted.
type cleanupStack struct {
	mu   sync.Mutex
	fns  []func()
	once sync.Once
	ran  bool
}

var cleanup cleanupStack

func (c *cleanupStack) push(f func()) {
	c.mu.Lock()
	if c.ran {
		c.mu.Unlock()
		f()
		return
	}
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *cleanupStack) run() {
	c.once.Do(func() {
		c.mu.Lock()
		c.ran = true
		fns := c.fns
		c.fns = nil
		c.mu.Unlock()
		for i := len(fns) - 1; i >= 0; i-- {
			fns[i]()
		}
	})
}

// onSignal tears everything down and exits on SIGINT, SIGTERM or SIGHUP.
func onSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nimapedge-bench: %v: stopping every process and removing the temporary directories\n", s)
		cleanup.run()
		os.Exit(130)
	}()
}

// raiseNoFile sets the soft open-file limit to the hard one; the children
// (Dovecot, HAProxy, nginx, imapedge) inherit it.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// Command imapedge is an IMAP edge proxy and load balancer with inspection.
//
//	imapedge serve -config proxy.yaml   run the proxy
//	imapedge check -config proxy.yaml   validate a config, print every problem
//	imapedge demo                       run a self-contained demo
//
// This package only parses flags, loads the config and wires the packages
// together; the protocol lives in package proxy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `usage: imapedge <command> [flags]

commands:
  serve -config FILE   run the proxy (SIGHUP reloads certificates, backends and routes)
  check -config FILE   validate FILE and print every problem; exit status 1 if any
  demo                 run a demo: built-in in-memory IMAP backends behind the proxy
  version              print the version

Run "imapedge <command> -h" for the flags of a command.
`

var version = "dev"

func main() {
	execQuietSysmon()
	// Tens of thousands of mostly idle sessions make memory the scarce
	// resource: collect at 50% heap growth instead of 100% unless the
	// operator chose with GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "imapedge", version)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "imapedge: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "imapedge %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

// newFlagSet returns a flag set that reports errors to stderr and does not
// exit.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("imapedge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

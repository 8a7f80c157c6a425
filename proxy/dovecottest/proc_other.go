//go:build !linux

package dovecottest

import (
	"os"
	"time"
)

// The harness needs Linux (process groups, PR_SET_PDEATHSIG, /proc).
const supported = false

type instance struct {
	exited  chan struct{}
	waitErr error
}

func launch(bin, conf string, out *os.File) (*instance, error) { return nil, errUnsupported }

func (inst *instance) stop(timeout time.Duration) {}

func (inst *instance) kill() {}

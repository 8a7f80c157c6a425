package proxy

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// connectWatch bounds backend connects: it shuts down the socket of a
// connect that outlives its deadline, and of every connect under way when
// the server stops. One timer serves all connects, and only while some are
// under way. A net.Dialer with a deadline or a cancellable context would
// instead give every connect a context with a timer, a cancellation hook
// and two socket deadlines (net's Control hook, used here, costs fewer
// allocations than those).
//
// Shutting down a connecting socket makes its connect fail at once
// ("connection reset by peer"). Connects end up to connectWatchEvery
// after their deadline.
type connectWatch struct {
	mu      sync.Mutex
	pending map[*pendingConnect]struct{}
	timer   *time.Timer // runs check; armed while pending is not empty
	armed   bool
	closed  bool
}

// pendingConnect is one connect under way.
type pendingConnect struct {
	rc       syscall.RawConn
	deadline int64 // UnixNano
	cause    error // why the watch shut the socket down; nil: it did not
}

const connectWatchEvery = 100 * time.Millisecond

var errConnectStopped = errors.New("server shutting down")

// errConnectTimeout is os.ErrDeadlineExceeded ("i/o timeout"), as a dial
// deadline would have reported it.
var errConnectTimeout = os.ErrDeadlineExceeded

// control is the net.Dialer Control hook: it registers the new socket
// before its connect starts (once per connect: only IP addresses are
// dialled this way). It refuses once the server stops.
func (w *connectWatch) control(pc *pendingConnect, rc syscall.RawConn) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errConnectStopped
	}
	pc.rc = rc
	if w.pending == nil {
		w.pending = make(map[*pendingConnect]struct{})
	}
	w.pending[pc] = struct{}{}
	if !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(connectWatchEvery, w.check)
		} else {
			w.timer.Reset(connectWatchEvery)
		}
	}
	return nil
}

// done unregisters a connect that ended, successfully or not, and
// returns why the watch cut it short (nil: it did not).
func (w *connectWatch) done(pc *pendingConnect) error {
	if pc.rc == nil {
		return nil // never registered
	}
	w.mu.Lock()
	delete(w.pending, pc)
	cause := pc.cause
	w.mu.Unlock()
	return cause
}

// check shuts down the connects past their deadline.
func (w *connectWatch) check() {
	now := time.Now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	for pc := range w.pending {
		if pc.cause == nil && pc.deadline <= now {
			pc.cause = errConnectTimeout
			shutdownSocket(pc.rc)
		}
	}
	if len(w.pending) > 0 && !w.closed {
		w.timer.Reset(connectWatchEvery)
	} else {
		w.armed = false
	}
}

// close shuts down every connect under way and refuses new ones.
func (w *connectWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
		w.armed = false
	}
	for pc := range w.pending {
		if pc.cause == nil {
			pc.cause = errConnectStopped
			shutdownSocket(pc.rc)
		}
	}
}

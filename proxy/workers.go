package proxy

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// workerIdle is how long a goroutine whose task ended waits for the next;
// at most maxIdleWorkers wait at once (each holds a grown stack), the rest
// exit at once: thousands of sessions parking together must not leave
// thousands of goroutines behind.
const (
	workerIdle     = 5 * time.Second
	maxIdleWorkers = 64
)

// workers runs session tasks (a connection's pre-auth and client copier,
// a backend copier, a copier resuming from parking) on goroutines that are
// kept for a while after their task ends.
//
// A fresh goroutine starts with a small stack and a login grows it two or
// three times (the dial, TLS, the log encoder): each growth copies the
// stack frame by frame, about 4% of a plaintext login's CPU. A reused
// goroutine keeps its grown stack, at most halved by each garbage
// collection while it waits.
type workers struct {
	mu     sync.Mutex
	idle   []*worker // waiting for a task; the last one waited least
	closed bool
	reaper *time.Timer // retires workers idle too long; armed while idle is not empty
	armed  bool
	expire time.Duration // workerIdle; tests shorten it

	started atomic.Int64 // goroutines started, ever
	wg      sync.WaitGroup
	log     *zap.Logger
}

// worker is one waiting goroutine: a task, or nil to exit, comes on its
// own channel. A plain receive costs less than a select over a shared
// channel, a timer and the context, and the most recently idle goroutine,
// whose stack is warm, takes the next task.
type worker struct {
	tasks     chan func() // buffered: run never blocks
	idleSince time.Time
}

// newWorkers returns the pool; its goroutines exit once ctx is done.
func newWorkers(ctx context.Context, log *zap.Logger) *workers {
	w := &workers{log: log, expire: workerIdle}
	context.AfterFunc(ctx, w.close)
	return w
}

// run runs task on a waiting goroutine, or on a new one if none waits.
func (w *workers) run(task func()) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		wk.tasks <- task
		return
	}
	w.mu.Unlock()
	w.wg.Add(1)
	w.started.Add(1)
	go w.loop(&worker{tasks: make(chan func(), 1)}, task)
}

func (w *workers) loop(wk *worker, task func()) {
	defer w.wg.Done()
	for {
		w.do(task)
		task = nil // the session it referred to can go
		if !w.wait(wk) {
			return
		}
		if task = <-wk.tasks; task == nil {
			return
		}
	}
}

// wait puts wk on the idle stack; false: the goroutine should exit
// instead (too many wait already, or the pool is closed).
func (w *workers) wait(wk *worker) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.idle) >= maxIdleWorkers {
		return false
	}
	wk.idleSince = time.Now()
	w.idle = append(w.idle, wk)
	if !w.armed {
		w.armed = true
		if w.reaper == nil {
			w.reaper = time.AfterFunc(w.expire, w.reap)
		} else {
			w.reaper.Reset(w.expire)
		}
	}
	return true
}

// reap retires the workers idle for longer than expire: the bottom of
// the stack.
func (w *workers) reap() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	limit := time.Now().Add(-w.expire)
	n := 0
	for n < len(w.idle) && !w.idle[n].idleSince.After(limit) {
		w.idle[n].tasks <- nil
		n++
	}
	if n > 0 {
		rest := copy(w.idle, w.idle[n:])
		clear(w.idle[rest:])
		w.idle = w.idle[:rest]
	}
	if len(w.idle) == 0 {
		w.armed = false
		return
	}
	// Next look: when the oldest remaining worker expires.
	w.reaper.Reset(time.Until(w.idle[0].idleSince.Add(w.expire)) + time.Millisecond)
}

// close makes every worker exit once its task ends.
func (w *workers) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, wk := range w.idle {
		wk.tasks <- nil
	}
	clear(w.idle)
	w.idle = nil
	if w.reaper != nil {
		w.reaper.Stop()
	}
}

// do runs one task; tasks recover their own panics, this is the last net.
func (w *workers) do(task func()) {
	defer func() {
		if r := recover(); r != nil {
			panicsTotal.Add(1)
			w.log.Error("panic in worker", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
		}
	}()
	task()
}

// waitAll waits for every worker to exit; the context must be done.
func (w *workers) waitAll() { w.wg.Wait() }

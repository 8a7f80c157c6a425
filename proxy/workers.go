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
	handoff chan func()
	started atomic.Int64 // goroutines started, ever
	idle    atomic.Int64 // goroutines waiting for a task
	wg      sync.WaitGroup
	ctx     context.Context
	log     *zap.Logger
}

func newWorkers(ctx context.Context, log *zap.Logger) *workers {
	return &workers{handoff: make(chan func()), ctx: ctx, log: log}
}

// run runs task on a waiting goroutine, or on a new one if none waits.
func (w *workers) run(task func()) {
	select {
	case w.handoff <- task:
	default:
		w.wg.Add(1)
		w.started.Add(1)
		go w.loop(task)
	}
}

func (w *workers) loop(task func()) {
	defer w.wg.Done()
	var t *time.Timer
	for {
		w.do(task)
		task = nil // the session it referred to can go
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle)
		}
		select {
		case task = <-w.handoff:
			w.idle.Add(-1)
		case <-t.C:
			w.idle.Add(-1)
			return
		case <-w.ctx.Done():
			w.idle.Add(-1)
			t.Stop()
			return
		}
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

// wait waits for every worker to exit; the context must be done.
func (w *workers) wait() { w.wg.Wait() }

package proxy

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestWorkersReuseGoroutines(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := newWorkers(ctx, zap.NewNop())
	t.Cleanup(func() {
		cancel()
		w.waitAll() // hangs if a worker ignores the context
	})
	done := make(chan int, 3)
	w.run(func() { done <- 1 })
	<-done
	waitFor(t, "the worker to wait for a task", func() bool { return waitingWorkers() == 1 })
	w.run(func() { panic("task failed") })
	waitFor(t, "the worker to survive a panic", func() bool { return waitingWorkers() == 1 })
	w.run(func() { done <- 2 })
	if got := <-done; got != 2 {
		t.Fatalf("task %d ran", got)
	}
	if n := w.started.Load(); n != 1 {
		t.Fatalf("%d goroutines started for tasks run one after the other, want 1", n)
	}
	// A task while the only worker is busy gets a goroutine of its own.
	// (The worker must be back to waiting first: it may still be on its
	// way from the last task.)
	waitFor(t, "the worker to wait again", func() bool { return waitingWorkers() == 1 })
	block := make(chan struct{})
	w.run(func() { <-block })
	waitFor(t, "the worker to take the blocking task", func() bool { return waitingWorkers() == 0 })
	w.run(func() { done <- 3 })
	<-done
	close(block)
	if n := w.started.Load(); n != 2 {
		t.Fatalf("%d goroutines started, want 2", n)
	}
}

// Sessions one after the other run on the same two goroutines (session
// and backend copier).
func TestSessionsReuseGoroutines(t *testing.T) {
	fb := quietBackend(t)
	p := startProxy(t, fakeBackends(fb), plainLogin)
	for i := range 3 {
		c := loginFakePlain(t, p)
		runTranscript(t, c, []step{send("b NOOP\r\n"), expect("* 1 EXISTS"), expect("b OK")})
		c.conn.Close()
		waitFor(t, "both goroutines to wait for work", func() bool { return waitingWorkers() == 2 })
		if n := p.srv.workers.started.Load(); n != 2 {
			t.Fatalf("after session %d: %d goroutines started, want 2", i+1, n)
		}
	}
}

// waitingWorkers counts worker goroutines blocked waiting for a task.
func waitingWorkers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		// The receive is the loop's own (its top frame), not a task's.
		lines := strings.SplitN(g, "\n", 3)
		if len(lines) > 1 && strings.Contains(lines[0], "[chan receive") && strings.Contains(lines[1], "proxy.(*workers).loop(") {
			n++
		}
	}
	return n
}

// When many tasks end together, at most maxIdleWorkers goroutines stay.
func TestWorkersIdleBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWorkers(ctx, zap.NewNop())
	release := make(chan struct{})
	n := 3 * maxIdleWorkers
	for range n {
		w.run(func() { <-release })
	}
	if got := w.started.Load(); got != int64(n) {
		t.Fatalf("%d goroutines for %d blocked tasks", got, n)
	}
	close(release)
	waitFor(t, "the surplus goroutines to exit", func() bool {
		return waitingWorkers() == maxIdleWorkers && runningWorkers() == maxIdleWorkers
	})
	cancel()
	w.waitAll()
}

// runningWorkers counts worker goroutines, waiting or not.
func runningWorkers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "proxy.(*workers).loop(")
}

// Workers idle for longer than expire exit; the pool goes on starting
// new ones.
func TestWorkersExpire(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := newWorkers(ctx, zap.NewNop())
	// Long enough that both workers are seen waiting, however slow the
	// machine; then short.
	w.expire = time.Hour
	release := make(chan struct{})
	w.run(func() { <-release })
	w.run(func() { <-release })
	close(release)
	waitFor(t, "two idle workers", func() bool { return waitingWorkers() == 2 })
	w.mu.Lock()
	w.expire = 50 * time.Millisecond
	w.reaper.Reset(w.expire)
	w.mu.Unlock()
	waitFor(t, "the idle workers to exit", func() bool { return runningWorkers() == 0 })
	done := make(chan struct{})
	w.run(func() { close(done) })
	<-done
	if n := w.started.Load(); n != 3 {
		t.Fatalf("%d goroutines started, want 3", n)
	}
	cancel()
	w.waitAll()
}

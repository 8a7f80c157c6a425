package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking: a logged-in session that sits in IDLE for minutes does not need
// two goroutines blocked in reads. When a copier's read would block while
// its session is in IDLE, the copier registers the socket with the
// server's poller (one epoll instance, one goroutine) and exits; when the
// socket becomes readable, or the session must end, a fresh copier
// goroutine carries on from the state kept in the splice. A parked session
// holds no goroutine stack and no read buffer.
//
// The copiers' reads go through parkConn, below every TLS layer, so a
// parked TLS session has consumed all the plaintext it had: tls.Conn only
// reads from the socket when it has nothing buffered, and it keeps partial
// records across a temporary error.

// errParked is what a parkConn read returns instead of blocking. It is a
// temporary net.Error, so crypto/tls does not treat it as fatal.
var errParked error = parkedError{}

type parkedError struct{}

func (parkedError) Error() string   { return "read would block" }
func (parkedError) Timeout() bool   { return false }
func (parkedError) Temporary() bool { return true }

// parkConn is a TCP connection whose reads can give up instead of waiting.
// Only the goroutine that reads sets mayPark.
type parkConn struct {
	*net.TCPConn
	mayPark bool

	rc     syscall.RawConn
	readFn func(fd uintptr) bool
	p      []byte
	n      int
	err    error
	block  bool
	fd     int // valid while the connection is open; set by the first parking read
}

func (c *parkConn) Read(p []byte) (int, error) {
	if !c.mayPark || len(p) == 0 {
		return c.TCPConn.Read(p)
	}
	if c.rc == nil {
		rc, err := c.TCPConn.SyscallConn()
		if err != nil {
			return c.TCPConn.Read(p)
		}
		rc.Control(func(fd uintptr) { c.fd = int(fd) })
		c.rc, c.readFn = rc, c.read
	}
	c.p, c.n, c.err, c.block = p, 0, nil, false
	err := c.rc.Read(c.readFn)
	c.p = nil
	switch {
	case err != nil:
		return 0, err
	case c.block:
		return 0, errParked
	case c.err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", c.err)}
	case c.n == 0:
		return 0, io.EOF
	}
	return c.n, nil
}

// Directions of a splice.
const (
	dirClient  = 0 // client → backend
	dirBackend = 1 // backend → client
)

// parkState is one direction's parking state, guarded by splice.parkMu.
type parkState struct {
	pc     *parkConn // nil: this direction never parks
	slot   *pollSlot // registration with the poller, after the first park
	parked bool      // no goroutine runs this direction
	awake  bool      // the session is ending: stay awake from now on
}

// pollSlot is a socket registered with the poller.
type pollSlot struct {
	token uint64
	fd    int
	sp    *splice
	dir   int
}

// mayPark reports whether direction dir may park now. Checked by the
// copier before its read, and again under parkMu before parking.
func (sp *splice) mayPark(dir int) bool {
	s := sp.s
	return sp.inIdle.Load() && !s.stopping.Load() && !sp.clientDone.Load() &&
		!(dir == dirClient && sp.compressed)
}

// tryPark parks direction dir after its read reported errParked. It
// reports false if the direction must go on reading instead.
func (sp *splice) tryPark(dir int) bool {
	sp.parkMu.Lock()
	defer sp.parkMu.Unlock()
	st := &sp.park[dir]
	p := sp.s.srv.poller
	if st.awake || p == nil || !sp.mayPark(dir) {
		return false
	}
	if st.slot == nil {
		st.slot = p.add(sp, dir, st.pc.fd)
	}
	if err := p.arm(st.slot); err != nil {
		st.awake = true
		return false
	}
	st.parked = true
	p.parked.Add(1)
	// A parked direction holds no line buffer either.
	if dir == dirClient {
		sp.client.Release()
	} else {
		sp.cw.mu.Lock()
		sp.cw.framer.Release()
		sp.cw.mu.Unlock()
	}
	return true
}

// resume restarts direction dir if it is parked. stay keeps it from
// parking again (the session is ending or a deadline changed).
func (sp *splice) resume(dir int, stay bool) {
	sp.parkMu.Lock()
	st := &sp.park[dir]
	if stay {
		st.awake = true
	}
	was := st.parked
	st.parked = false
	sp.parkMu.Unlock()
	if was {
		sp.s.srv.poller.parked.Add(-1)
		go sp.run(dir)
	}
}

// wake restarts both directions for good: called by whoever changes a
// deadline of a session that may be parked.
func (sp *splice) wake() {
	sp.resume(dirClient, true)
	sp.resume(dirBackend, true)
}

// unregister removes the session's sockets from the poller; it must run
// before they are closed.
func (sp *splice) unregister() {
	sp.parkMu.Lock()
	defer sp.parkMu.Unlock()
	for i := range sp.park {
		st := &sp.park[i]
		st.awake = true
		if st.slot != nil {
			sp.s.srv.poller.remove(st.slot)
			st.slot = nil
		}
	}
}

// pollerBase is the platform-independent part of the poller.
type pollerBase struct {
	mu     sync.Mutex
	slots  map[uint64]*pollSlot
	next   uint64
	parked atomic.Int64 // directions parked now
}

func (p *pollerBase) addSlot(sp *splice, dir, fd int) *pollSlot {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	sl := &pollSlot{token: p.next, fd: fd, sp: sp, dir: dir}
	p.slots[sl.token] = sl
	return sl
}

func (p *pollerBase) removeSlot(sl *pollSlot) {
	p.mu.Lock()
	delete(p.slots, sl.token)
	p.mu.Unlock()
}

// ready resumes the directions whose sockets became readable.
func (p *pollerBase) ready(tokens []uint64) {
	var found []*pollSlot
	p.mu.Lock()
	for _, t := range tokens {
		if sl := p.slots[t]; sl != nil {
			found = append(found, sl)
		}
	}
	p.mu.Unlock()
	for _, sl := range found {
		sl.sp.resume(sl.dir, false)
	}
}

// expire resumes parked client directions whose idle deadline passed, so
// that their reads time out as they would have without parking.
func (p *pollerBase) expire(now time.Time) {
	var due []*pollSlot
	p.mu.Lock()
	for _, sl := range p.slots {
		if sl.dir == dirClient && sl.sp.s.readDeadline.Load() <= now.UnixNano() {
			due = append(due, sl)
		}
	}
	p.mu.Unlock()
	for _, sl := range due {
		sl.sp.resume(dirClient, true)
	}
}

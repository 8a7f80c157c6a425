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
// Sessions that are quiet between commands (no IDLE) park too: every
// quiet interval the poller looks for logged-in sessions at rest (nothing
// in flight, at a response boundary) that moved no byte since its last
// look, and nudges their copiers out of their blocked reads with a read
// deadline in the past. A nudged copier puts back the deadline the session
// wants and parks. The compressed client leg is never nudged: a timeout
// would break the DEFLATE reader.
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

// tcpConn is what parkConn needs of a TCP connection: a *net.TCPConn or
// a *sockConn (Linux).
type tcpConn interface {
	net.Conn
	SyscallConn() (syscall.RawConn, error)
	CloseWrite() error
	SetLinger(sec int) error
	SetKeepAliveConfig(net.KeepAliveConfig) error
}

// parkConn is a TCP connection whose reads can give up instead of waiting.
// Only the goroutine that reads sets mayPark.
type parkConn struct {
	tcpConn
	mayPark bool

	rc     syscall.RawConn
	readFn func(fd uintptr) bool
	p      []byte
	n      int
	err    error
	block  bool
	fd     int // valid while the connection is open; set by the first parking read

	// writeNow's state (the client copier's, for the backend connection).
	wrc     syscall.RawConn
	writeFn func(fd uintptr) bool
	wp      []byte
	wn      int
	werr    error
}

func (c *parkConn) Read(p []byte) (int, error) {
	if !c.mayPark || len(p) == 0 {
		return c.tcpConn.Read(p)
	}
	if c.rc == nil {
		rc, err := c.tcpConn.SyscallConn()
		if err != nil {
			return c.tcpConn.Read(p)
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
	nudged bool      // a past read deadline was set to make this direction park
	quiet  bool      // copier only: nudged, no data since; may park outside IDLE
	off    bool      // copier only: parking failed or the session is ending; never try again
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
	st := &sp.park[dir]
	return (sp.inIdle.Load() || st.quiet) && !st.off && !s.stopping.Load() && !sp.clientDone.Load() &&
		!(dir == dirClient && sp.compressed.Load())
}

// takeNudge handles a read error of direction dir: if it is the timeout a
// nudge caused, the deadline the session wants is put back and the copier
// goes on (its next read may park). Otherwise it reports false.
func (sp *splice) takeNudge(dir int, err error) bool {
	if !isTimeout(err) {
		return false
	}
	sp.parkMu.Lock()
	st := &sp.park[dir]
	nudged := st.nudged
	st.nudged = false
	sp.parkMu.Unlock()
	if !nudged {
		return false
	}
	st.quiet = true
	if dir == dirClient {
		sp.restoreRead(sp.s.conn, &sp.s.readDeadline)
	} else {
		sp.restoreRead(sp.back, &sp.backRead)
	}
	return true
}

// restoreRead sets c's read deadline to the one the session wants,
// *want (UnixNano, 0: none), or to the past once the session is stopping,
// also if the wanted one changes meanwhile (extendRead, setBackRead).
func (sp *splice) restoreRead(c net.Conn, want *atomic.Int64) {
	for {
		v := want.Load()
		t := time.Time{}
		if v != 0 {
			t = time.Unix(0, v)
		}
		c.SetReadDeadline(t)
		if sp.s.stopping.Load() {
			c.SetReadDeadline(time.Unix(1, 0))
			return
		}
		if want.Load() == v {
			return
		}
	}
}

// setBackRead sets the backend read deadline; a nudged copier puts this
// one back.
func (sp *splice) setBackRead(t time.Time) {
	sp.backRead.Store(t.UnixNano())
	sp.back.SetReadDeadline(t)
}

// startCompress marks the client leg compressed (client copier, on
// COMPRESS). A nudge already under way is undone and the socket's read
// deadline set to the session's: an early timeout must not reach the
// DEFLATE reader, whose errors are final.
func (sp *splice) startCompress() {
	sp.parkMu.Lock()
	sp.compressed.Store(true)
	st := &sp.park[dirClient]
	st.nudged = false
	sp.parkMu.Unlock()
	// The socket's deadline may be one extendRead did not move (or a
	// nudge's): from here on it must be the session's own.
	sp.restoreRead(sp.s.conn, &sp.s.readDeadline)
	sp.startInflate = true
}

// nudgeIfQuiet (poller goroutine) nudges the copiers of a session that is
// at rest and moved no byte since the last look.
func (sp *splice) nudgeIfQuiet() {
	s := sp.s
	moved := s.bytesIn.Load() + s.bytesOut.Load()
	if moved != sp.quietMark {
		sp.quietMark = moved
		return
	}
	// Never wait here: the backend copier holds cw.mu while it writes to
	// a client that may not be reading. Busy is not quiet anyway.
	if !sp.cw.mu.TryLock() {
		return
	}
	atRest := sp.cw.framer.AtBoundary()
	sp.cw.mu.Unlock()
	if !atRest || sp.inIdle.Load() || sp.tracker.Pending() != 0 {
		return
	}
	sp.parkMu.Lock()
	defer sp.parkMu.Unlock()
	if s.stopping.Load() || sp.clientDone.Load() {
		return
	}
	past := time.Unix(1, 0)
	for dir := range sp.park {
		st := &sp.park[dir]
		if st.pc == nil || st.awake || st.parked || st.nudged || (dir == dirClient && sp.compressed.Load()) {
			continue
		}
		// Under parkMu, so that startCompress either sees the flag or
		// runs before it.
		st.nudged = true
		if dir == dirClient {
			s.conn.SetReadDeadline(past)
		} else {
			sp.back.SetReadDeadline(past)
		}
	}
}

// tryPark parks direction dir after its read reported errParked. It
// reports false if the direction must go on reading instead.
func (sp *splice) tryPark(dir int) bool {
	sp.parkMu.Lock()
	defer sp.parkMu.Unlock()
	st := &sp.park[dir]
	p := sp.s.srv.poller
	if st.awake || p == nil {
		// Without this, the next read would give up again at once: the
		// copier would spin instead of waiting.
		st.off = true
		return false
	}
	if !sp.mayPark(dir) {
		return false
	}
	if st.slot == nil {
		st.slot = p.add(sp, dir, st.pc.fd)
		if dir == dirBackend {
			// Dialed without keep-alive (dialBackend): a parked session
			// needs it to notice a backend that vanished.
			st.pc.SetKeepAliveConfig(keepAlive)
		}
	}
	if err := p.arm(st.slot); err != nil {
		st.awake, st.off = true, true
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
		sp.s.srv.workers.run(func() { sp.run(dir) })
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

// parkQuiet (poller goroutine) nudges the logged-in sessions that are at
// rest and were quiet since the last call.
func (s *Server) parkQuiet() {
	s.mu.Lock()
	list := s.quietBuf[:0]
	for c := range s.conns {
		if sp := c.sp.Load(); sp != nil {
			list = append(list, sp)
		}
	}
	s.mu.Unlock()
	for i, sp := range list {
		sp.nudgeIfQuiet()
		list[i] = nil
	}
	s.quietBuf = list[:0]
}

// guard runs f and survives a panic in it (counted in panics_total): the
// poller goroutine serves every parked session and must not die.
func guard(f func()) {
	defer func() {
		if r := recover(); r != nil {
			panicsTotal.Add(1)
		}
	}()
	f()
}

// pollerBase is the platform-independent part of the poller.
type pollerBase struct {
	// quiet runs every quietEvery in the poller goroutine.
	quiet      func()
	quietEvery time.Duration

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

package proxy

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/imapedge/imapedge/proxy/imapwire"
)

const (
	copyBufSize = 32 << 10
	// holdMax bounds how much of an unfinished command line the client
	// copier holds back while it waits to see the command name.
	holdMax = 256
	// halfCloseTimeout bounds the backend→client direction after the
	// client has closed its side.
	halfCloseTimeout = 30 * time.Second
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// smallBufSize is the read buffer a copier holds while its side is quiet:
// an idle session keeps two of these, not two 32 KiB buffers.
const smallBufSize = 512

// readBuf hands a copier the buffer for its next read: a small one of its
// own while traffic is light, a pooled 32 KiB one while a read fills the
// small one, given back as soon as a read comes back short.
type readBuf struct {
	small [smallBufSize]byte
	big   *[]byte
}

func (r *readBuf) next() []byte {
	if r.big != nil {
		return *r.big
	}
	return r.small[:]
}

// after adapts the buffer to a read of n bytes into the buffer next gave.
func (r *readBuf) after(n int) {
	switch {
	case r.big == nil && n == smallBufSize:
		r.big = copyBufs.Get().(*[]byte)
	case r.big != nil && n < copyBufSize/4:
		r.release()
	}
}

func (r *readBuf) release() {
	if r.big != nil {
		copyBufs.Put(r.big)
		r.big = nil
	}
}

// clientWriter serializes writes to the client: forwarded server bytes and
// lines imapedge injects itself. Injected lines wait for a response
// boundary, so they never land inside a response or a literal.
type clientWriter struct {
	mu      sync.Mutex
	out     io.Writer // the client connection, or a compressor in front of it
	framer  imapwire.ServerFramer
	pending []byte
	// after runs once the pending lines are written (switching on
	// compression after the COMPRESS answer).
	after func()
}

// forward writes p to the client and feeds it to the framer. Usually the
// write comes first, so that following the stream is not part of the
// round trip; when the client's next bytes may depend on what p says
// (a continuation request, the answer to a synchronizing literal or IDLE,
// a change of the selected mailbox: Tracker.OrderSensitive), the framer
// sees p before the client can react to it.
func (w *clientWriter) forward(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	early := w.framer.MayHoldContinuation(p) || w.framer.T.OrderSensitive()
	if early {
		w.framer.Feed(p)
	}
	_, err := w.out.Write(p)
	if !early {
		w.framer.Feed(p)
	}
	if err != nil {
		return err
	}
	if len(w.pending) > 0 && w.framer.AtBoundary() {
		return w.writePendingLocked()
	}
	return nil
}

func (w *clientWriter) writePendingLocked() error {
	_, err := w.out.Write(w.pending)
	w.pending = w.pending[:0]
	if w.after != nil {
		f := w.after
		w.after = nil
		f()
	}
	return err
}

// inject writes line (with CRLF) now if the server stream is at a response
// boundary, else as soon as it gets there. after, if not nil, runs right
// after the line is written.
func (w *clientWriter) inject(line string, after func()) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, line...)
	w.pending = append(w.pending, "\r\n"...)
	if after != nil {
		w.after = after
	}
	if !w.framer.AtBoundary() {
		return nil
	}
	return w.writePendingLocked()
}

// sawBye reports whether the server sent an untagged BYE.
func (w *clientWriter) sawBye() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.framer.SawBye()
}

// atBoundary reports whether the server stream is at a response boundary.
func (w *clientWriter) atBoundary() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.framer.AtBoundary()
}

// deflateWriter compresses the client leg (RFC 4978): every write is
// followed by a sync flush so the client sees it at once.
type deflateWriter struct {
	fw *flate.Writer
}

func (d deflateWriter) Write(p []byte) (int, error) {
	n, err := d.fw.Write(p)
	if err != nil {
		return n, err
	}
	return n, d.fw.Flush()
}

// splice forwards the logged-in session until either side ends it.
type splice struct {
	s       *session
	back    net.Conn
	cw      clientWriter
	tracker imapwire.Tracker
	client  imapwire.ClientFramer

	inIdle     atomic.Bool
	logoutSent atomic.Bool
	clientDone atomic.Bool
	backDone   atomic.Bool // the backend direction has ended

	compressOffered bool        // COMPRESS=DEFLATE was advertised after login
	compressed      atomic.Bool // the client leg is compressed
	startInflate    bool        // COMPRESS was just answered: the bytes after it are DEFLATE
	src             io.Reader

	hold    []byte // start of a command line not yet forwarded
	holding bool
	parseMu sync.Mutex // held by the client copier from forwarding a chunk until it is parsed
	bufs    net.Buffers

	// Bytes read before the splice started, forwarded first.
	backPending, clientPending []byte

	backRead  atomic.Int64 // the backend read deadline others want (UnixNano, 0: none)
	quietMark int64        // bytes moved at the last quiet check (poller goroutine)

	running atomic.Int32 // copiers not ended (parked ones count)
	parkMu  sync.Mutex
	park    [2]parkState

	// Completed commands wait here until the bytes that completed them
	// are forwarded (recordCompleted): logging never delays a response.
	doneMu    sync.Mutex
	done      []*imapwire.Exchange
	undone    atomic.Int32 // len(done), read without the lock
	recordMu  sync.Mutex   // one copier records at a time, in order
	doneSpare []*imapwire.Exchange
}

// completed is the tracker's OnComplete: it queues the command.
func (sp *splice) completed(ex *imapwire.Exchange) {
	sp.doneMu.Lock()
	sp.done = append(sp.done, ex)
	sp.undone.Add(1)
	sp.doneMu.Unlock()
}

// recordCompleted records the queued commands (audit events, metrics), in
// the order they completed. Copiers call it after each forward and when
// they stop.
func (sp *splice) recordCompleted() {
	if sp.undone.Load() == 0 {
		return
	}
	sp.recordMu.Lock()
	defer sp.recordMu.Unlock()
	for {
		sp.doneMu.Lock()
		batch := sp.done
		if len(batch) == 0 {
			sp.doneMu.Unlock()
			return
		}
		// The spare array goes to done: from here on completed appends
		// to it, never to the batch being recorded.
		sp.done, sp.doneSpare = sp.doneSpare[:0], nil
		sp.undone.Store(0)
		sp.doneMu.Unlock()
		for _, ex := range batch {
			sp.s.onCommand(ex)
		}
		clear(batch)
		sp.doneSpare = batch[:0]
	}
}

// splice forwards the logged-in session until it ends or parks; the
// backend direction runs in a goroutine of its own.
func (s *session) splice(bc *backendConn) {
	s.mu.Lock()
	s.back = bc.conn
	s.mu.Unlock()
	s.raw.SetDeadline(time.Time{})
	sp := &splice{s: s, back: bc.conn, src: s.conn, compressOffered: s.compressOffered}
	sp.cw.out = s.conn
	sp.cw.framer.T = &sp.tracker
	sp.client.T = &sp.tracker
	sp.tracker.OnComplete = sp.completed
	if s.srv.opts.DisableInspection {
		sp.tracker.Lose()
	}
	m := s.srv.metrics

	// Bytes the backend sent after its login answer, and bytes the client
	// pipelined after its LOGIN, are forwarded first, in order.
	var backPending, clientPending []byte
	if n := bc.br.Buffered(); n > 0 {
		backPending, _ = bc.br.Peek(n)
		backPending = append([]byte(nil), backPending...)
	}
	if n := s.br.Buffered(); n > 0 {
		clientPending, _ = s.br.Peek(n)
		clientPending = append([]byte(nil), clientPending...)
	}
	// The pre-auth buffers are not needed any more: an idle session holds
	// as little memory as possible.
	s.releaseIO()
	bc.releaseReader()

	sp.backPending, sp.clientPending = backPending, clientPending
	if pc, ok := s.raw.(*parkConn); ok {
		sp.park[dirClient].pc = pc
	}
	if pc, ok := bc.raw.(*parkConn); ok {
		sp.park[dirBackend].pc = pc
	}
	s.sp.Store(sp)
	s.extendRead(sp.idleTimeout())
	sp.running.Store(2)
	m.activeBy.get(s.backend).Inc()
	s.srv.workers.run(func() { sp.run(dirBackend) })
	// The session goroutine carries on as the client copier: one
	// goroutine fewer to start per login. When the session parks, the
	// goroutine goes back to the workers.
	sp.run(dirClient)
}

// run is a copier goroutine: it forwards one direction until that
// direction ends or parks (see park.go). The copier that ends last ends
// the session.
func (sp *splice) run(dir int) {
	s := sp.s
	parked := false
	defer func() {
		if r := recover(); r != nil {
			panicsTotal.Add(1)
			s.srv.log.Error("panic in copier", zap.String("session", s.id), zap.Int("direction", dir), zap.Any("panic", r))
			s.setReason(reasonError)
			s.abort()
			parked = false
		}
		if parked || sp.running.Add(-1) != 0 {
			return
		}
		sp.client.Finish()
		sp.tracker.Finish()
		sp.safely(sp.recordCompleted)
		if sp.tracker.Lost() && !s.srv.opts.DisableInspection {
			s.srv.metrics.inspectionLost.Inc()
		}
		s.srv.metrics.activeBy.get(s.backend).Dec()
		s.srv.endSession(s)
	}()
	if dir == dirBackend {
		parked = sp.copyBackendToClient()
	} else {
		parked = sp.copyClientToBackend()
	}
	sp.recordCompleted()
}

// safely runs f, recovering and counting a panic: for work done after a
// copier's own recover.
func (sp *splice) safely(f func()) {
	defer func() {
		if r := recover(); r != nil {
			panicsTotal.Add(1)
			sp.s.srv.log.Error("panic in copier", zap.String("session", sp.s.id), zap.Any("panic", r))
		}
	}()
	f()
}

// read reads the next chunk of direction dir, letting the read give up
// with errParked when the direction may park.
func (sp *splice) read(dir int, r io.Reader, buf []byte) (int, error) {
	if pc := sp.park[dir].pc; pc != nil {
		pc.mayPark = sp.mayPark(dir)
	}
	return r.Read(buf)
}

// copyBackendToClient forwards server bytes to the client until the
// backend closes or fails (false) or the direction parks (true).
func (sp *splice) copyBackendToClient() (parked bool) {
	s := sp.s
	var rb readBuf
	defer rb.release()
	out := s.srv.metrics.bytesOut
	if pending := sp.backPending; len(pending) > 0 {
		sp.backPending = nil
		if err := sp.cw.forward(pending); err != nil {
			sp.endClientGone(err)
			return false
		}
		s.bytesOut.Add(int64(len(pending)))
		out.Add(float64(len(pending)))
	}
	for {
		buf := rb.next()
		n, err := sp.read(dirBackend, sp.back, buf)
		if n > 0 {
			if sp.inIdle.Load() {
				// Backend traffic during IDLE keeps the session alive.
				s.extendRead(sp.idleTimeout())
			}
			sp.park[dirBackend].quiet = false
			sp.awaitClientParse()
			werr := sp.cw.forward(buf[:n])
			sp.recordCompleted()
			if werr != nil {
				sp.endClientGone(werr)
				return false
			}
			s.bytesOut.Add(int64(n))
			out.Add(float64(n))
		}
		rb.after(n)
		if err == errParked {
			if sp.tryPark(dirBackend) {
				return true
			}
			continue
		}
		if err != nil && sp.takeNudge(dirBackend, err) {
			continue
		}
		if err != nil {
			sp.backendEnded(err)
			return false
		}
	}
}

// backendEnded handles the end of the server stream.
func (sp *splice) backendEnded(err error) {
	s := sp.s
	sp.backDone.Store(true)
	if err == io.EOF {
		s.backEOF.Store(true)
	}
	switch {
	case sp.cw.framer.SawBye() && sp.logoutSent.Load():
		s.setReason(reasonLogout)
	case sp.clientDone.Load():
		// The client left first; the backend closing is the consequence.
	case sp.cw.framer.SawBye():
		s.setReason(reasonBackendLost)
	default:
		s.setReason(reasonBackendLost)
		if sp.cw.atBoundary() {
			bye := "* BYE [UNAVAILABLE] Backend connection lost"
			if s.reasonIs(reasonShutdown) {
				bye = "* BYE [UNAVAILABLE] Server shutting down"
			}
			s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			sp.cw.inject(bye, nil)
		}
		// Otherwise the backend died inside a response: close at once,
		// never write a BYE into a literal.
		if !errors.Is(err, io.EOF) {
			s.srv.log.Warn("backend connection lost", zap.String("session", s.id), zap.String("backend", s.backend), zap.Error(err))
		}
	}
	// Unblock the client copier.
	s.stopClient()
}

func (sp *splice) endClientGone(err error) {
	sp.backDone.Store(true)
	sp.s.setReason(reasonClientEOF)
	sp.setBackRead(time.Unix(1, 0))
	sp.back.SetWriteDeadline(time.Unix(1, 0))
	sp.s.stopClient()
}

func (sp *splice) idleTimeout() time.Duration {
	if d := sp.s.srv.opts.Policy.IdleTimeout; d > 0 {
		return d
	}
	return 31 * time.Minute
}

// copyClientToBackend forwards client bytes to the backend until the
// client closes, goes idle for too long, or the backend side ends (false),
// or the direction parks (true). Every chunk from the client moves its
// idle deadline.
func (sp *splice) copyClientToBackend() (parked bool) {
	s := sp.s
	var rb readBuf
	defer rb.release()
	if pending := sp.clientPending; len(pending) > 0 {
		sp.clientPending = nil
		if err := sp.forwardClient(pending); err != nil {
			sp.clientEnded(err, true)
			return false
		}
	}
	idle := sp.idleTimeout()
	for {
		buf := rb.next()
		n, err := sp.read(dirClient, sp.src, buf)
		if n > 0 {
			sp.park[dirClient].quiet = false
			werr := sp.forwardClient(buf[:n])
			sp.recordCompleted()
			if werr != nil {
				sp.clientEnded(werr, true)
				return false
			}
			s.extendRead(idle)
		}
		rb.after(n)
		if err == errParked {
			if sp.tryPark(dirClient) {
				return true
			}
			continue
		}
		if err != nil && (sp.takeNudge(dirClient, err) || sp.rearmClient(err)) {
			continue
		}
		if err != nil {
			sp.clientEnded(err, false)
			return false
		}
	}
}

// rearmClient handles a client read timeout that came before the idle
// deadline the session wants (extendRead moves that one without touching
// the socket): it sets the socket's deadline to the wanted one and reports
// true, so the copier reads on.
func (sp *splice) rearmClient(err error) bool {
	s := sp.s
	if !isTimeout(err) || s.stopping.Load() || sp.compressed.Load() || s.readDeadline.Load() <= time.Now().UnixNano() {
		return false
	}
	sp.restoreRead(s.conn, &s.readDeadline)
	return true
}

// clientEnded handles the end of the client stream.
func (sp *splice) clientEnded(err error, backendWrite bool) {
	s := sp.s
	sp.clientDone.Store(true)
	// The backend direction may be parked: it must see the deadlines
	// set below.
	defer sp.wake()
	switch {
	case backendWrite:
		// Writing to the backend failed: the backend copier reports why.
		sp.setBackRead(time.Now().Add(time.Second))
		return
	case isTimeout(err) && (s.reasonSet() || s.stopping.Load()):
		// Deadline set by the backend copier or a shutdown.
	case isTimeout(err):
		s.setReason(reasonIdleTimeout)
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		sp.cw.inject("* BYE Autologout; idle for too long", nil)
		sp.setBackRead(time.Unix(1, 0))
		sp.back.SetWriteDeadline(time.Unix(1, 0))
		return
	case sp.logoutSent.Load():
		s.setReason(reasonLogout)
	default:
		s.setReason(reasonClientEOF)
	}
	if sp.backDone.Load() {
		// Nothing left to half-close (after LOGOUT the backend is gone
		// already): the close that follows is enough.
		return
	}
	// Half-close: the backend sees EOF and may finish its answers; the
	// deadline bounds how long that direction stays open. A backend that
	// answered LOGOUT with BYE closes by itself.
	if cw, ok := sp.back.(interface{ CloseWrite() error }); ok && !(sp.logoutSent.Load() && sp.cw.sawBye()) {
		cw.CloseWrite()
	}
	sp.setBackRead(time.Now().Add(halfCloseTimeout))
}

func (s *session) reasonIs(r string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason == r
}

func (s *session) reasonSet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason != ""
}

// forwardClient passes one chunk of client bytes through the framer and on
// to the backend. Commands imapedge answers itself (COMPRESS, STARTTLS) are
// cut out of the stream; to see a command's name, the start of each command
// line is held back until its end (at most holdMax bytes).
//
// Whole command lines that are none of those, the usual chunk, are
// forwarded to a plain TCP backend before they are parsed, so that parsing
// is not part of the round trip: the write never waits (what the socket
// does not take at once is written after parsing), and parseMu, held from
// before that write until the lines are parsed, keeps the backend copier
// from following an answer to a command the tracker does not know yet
// (awaitClientParse). Nothing that can block runs under parseMu.
func (sp *splice) forwardClient(data []byte) error {
	if nw, ok := sp.back.(nowWriter); ok && sp.plainLines(data) {
		sp.parseMu.Lock()
		n, err := nw.writeNow(data)
		if testHookClientForwarded != nil {
			testHookClientForwarded()
		}
		sp.parseClient(data, true)
		sp.parseMu.Unlock()
		if err == nil && n < len(data) {
			_, err = sp.back.Write(data[n:])
		}
		return err
	}
	bufs, rest := sp.parseClient(data, false)
	var err error
	if len(bufs) == 1 {
		_, err = sp.back.Write(bufs[0])
	} else if len(bufs) > 1 {
		_, err = bufs.WriteTo(sp.back)
	}
	if err == nil && sp.startInflate {
		sp.startInflate = false
		// From here on the client sends DEFLATE data (RFC 4978 §3).
		sp.src = flate.NewReader(io.MultiReader(bytes.NewReader(append([]byte(nil), rest...)), sp.s.conn))
	}
	return err
}

// nowWriter is a backend connection that can write without waiting:
// writeNow writes what the socket takes at once and reports how much
// (parkConn on Linux).
type nowWriter interface {
	writeNow(p []byte) (int, error)
}

// parseClient feeds one chunk of client bytes to the framer and returns
// the parts of it to forward (commands imapedge answers itself cut out,
// the start of an unfinished command line held back) and, after COMPRESS,
// the rest of the chunk, which is compressed. With forwarded the chunk has
// gone to the backend already: nothing is answered locally.
func (sp *splice) parseClient(data []byte, forwarded bool) (bufs net.Buffers, rest []byte) {
	s := sp.s
	bufs = sp.bufs[:0]
	start, i := 0, 0
	for i < len(data) {
		n, ev := sp.client.Next(data[i:])
		i += n
		switch ev {
		case imapwire.EvCommandStart:
			if i > start {
				bufs = append(bufs, data[start:i])
			}
			start = i
			sp.holding = true
		case imapwire.EvCommandLine:
			s.commands.Add(1)
			verb := sp.client.Verb()
			if imapwire.EqualFold(verb, "LOGOUT") {
				sp.logoutSent.Store(true)
			}
			if sp.holding && !forwarded && sp.answerLocally(verb) {
				sp.hold = sp.hold[:0]
				start = i
				if sp.startInflate {
					rest = data[i:]
					i = len(data)
					start = i
				}
			} else if len(sp.hold) > 0 {
				bufs = append(bufs, sp.hold)
				sp.hold = nil
			}
			sp.holding = false
		}
	}
	if sp.holding {
		if len(sp.hold)+len(data)-start <= holdMax {
			sp.hold = append(sp.hold, data[start:]...)
		} else {
			// Too long to be a command imapedge answers itself.
			if len(sp.hold) > 0 {
				bufs = append(bufs, sp.hold)
				sp.hold = nil
			}
			bufs = append(bufs, data[start:])
			sp.holding = false
		}
	} else if start < len(data) {
		bufs = append(bufs, data[start:])
	}
	sp.inIdle.Store(sp.client.InIdle())
	sp.bufs = bufs[:0]
	var total int
	for _, b := range bufs {
		total += len(b)
	}
	s.bytesIn.Add(int64(total))
	s.srv.metrics.bytesIn.Add(float64(total))
	return bufs, rest
}

// testHookClientForwarded, when set by a test, runs between forwarding
// whole command lines and parsing them.
var testHookClientForwarded func()

// plainLines reports whether data, read at the start of a command, is
// whole command lines without literals, none of them a command imapedge
// answers itself (COMPRESS, STARTTLS): such bytes can be forwarded before
// they are parsed. It looks at each line's second word and last bytes
// only.
func (sp *splice) plainLines(data []byte) bool {
	if sp.holding || len(sp.hold) > 0 || sp.startInflate || !sp.client.AtCommandStart() ||
		len(data) == 0 || data[len(data)-1] != '\n' {
		return false
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data[:i]
		data = data[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if n := len(line); n > 0 && line[n-1] == '}' {
			return false // a literal follows
		}
		_, rest, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		verb, _, _ := bytes.Cut(rest, []byte{' '})
		if imapwire.EqualFold(verb, "COMPRESS") || imapwire.EqualFold(verb, "STARTTLS") {
			return false
		}
	}
	return true
}

// awaitClientParse returns once the client bytes forwarded so far are
// parsed (see forwardClient).
func (sp *splice) awaitClientParse() {
	sp.parseMu.Lock()
	sp.parseMu.Unlock()
}

// answerLocally answers the commands imapedge must not forward after
// login. It reports whether the command line is to be dropped.
func (sp *splice) answerLocally(verb []byte) bool {
	tag := sp.client.Tag()
	if tag == nil {
		return false
	}
	cmd := sp.client.Current()
	reply := func(status, code, text string, after func()) {
		line := string(tag) + " " + status + " "
		if code != "" {
			line += "[" + code + "] "
		}
		line += text
		sp.tracker.CompleteLocal(cmd, status, code, len(line)+2)
		sp.cw.inject(line, after)
	}
	switch {
	case imapwire.EqualFold(verb, "COMPRESS"):
		mech := sp.client.Line()
		switch {
		case sp.compressed.Load():
			reply("NO", "COMPRESSIONACTIVE", "DEFLATE is active already.", nil)
		case !sp.compressOffered:
			reply("NO", "CANNOT", "Compression is not available.", nil)
		case !bytes.HasSuffix(bytes.ToUpper(mech), []byte(" DEFLATE")):
			reply("BAD", "", "Unknown compression mechanism.", nil)
		default:
			sp.startCompress()
			// The answer goes out uncompressed; everything after it is
			// compressed (RFC 4978 §3).
			reply("OK", "", "DEFLATE active", func() {
				fw, _ := flate.NewWriter(sp.s.conn, flate.BestSpeed)
				sp.cw.out = deflateWriter{fw}
			})
		}
		return true
	case imapwire.EqualFold(verb, "STARTTLS"):
		reply("BAD", "CLIENTBUG", "STARTTLS is not valid after login.", nil)
		return true
	}
	return false
}

// State is what a logged-in session is doing, as the admin API reports it.
const (
	StateIdle        = "idle"         // nothing in flight, at a response boundary
	StateIdleCommand = "idle-command" // in IDLE
	StateBusy        = "busy"         // a command in flight or a response being sent
)

// state reports what the session is doing and whether the server stream is
// at a response boundary, where a line may be injected.
func (sp *splice) state() (state string, atBoundary bool) {
	atBoundary = sp.cw.atBoundary()
	switch {
	case sp.inIdle.Load():
		return StateIdleCommand, atBoundary
	case atBoundary && sp.tracker.Pending() == 0:
		return StateIdle, true
	}
	return StateBusy, atBoundary
}

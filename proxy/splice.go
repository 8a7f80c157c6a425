package proxy

import (
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

// clientWriter serializes writes to the client: forwarded server bytes and
// lines imapedge injects itself. Injected lines wait for a response
// boundary, so they never land inside a response or a literal.
type clientWriter struct {
	mu      sync.Mutex
	conn    net.Conn
	framer  imapwire.ServerFramer
	pending []byte
}

// forward feeds p to the framer, then writes it. The framer sees a
// continuation request before the client can react to it.
func (w *clientWriter) forward(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.framer.Feed(p)
	if _, err := w.conn.Write(p); err != nil {
		return err
	}
	if len(w.pending) > 0 && w.framer.AtBoundary() {
		_, err := w.conn.Write(w.pending)
		w.pending = w.pending[:0]
		return err
	}
	return nil
}

// inject writes line (with CRLF) now if the server stream is at a response
// boundary, else as soon as it gets there.
func (w *clientWriter) inject(line string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, line...)
	w.pending = append(w.pending, "\r\n"...)
	if !w.framer.AtBoundary() {
		return nil
	}
	_, err := w.conn.Write(w.pending)
	w.pending = w.pending[:0]
	return err
}

// atBoundary reports whether the server stream is at a response boundary.
func (w *clientWriter) atBoundary() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.framer.AtBoundary()
}

// splice forwards the logged-in session until either side ends it.
type splice struct {
	s      *session
	back   net.Conn
	cw     clientWriter
	sync   imapwire.SyncLiteral
	client imapwire.ClientFramer

	inIdle     atomic.Bool
	logoutSent atomic.Bool
	clientDone atomic.Bool

	hold    []byte // start of a command line not yet forwarded
	holding bool
	bufs    net.Buffers
}

func (s *session) splice(bc *backendConn) {
	s.mu.Lock()
	s.back = bc.conn
	s.mu.Unlock()
	s.raw.SetDeadline(time.Time{})
	sp := &splice{s: s, back: bc.conn}
	sp.cw.conn = s.conn
	sp.cw.framer.Sync = &sp.sync
	sp.client.Sync = &sp.sync

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
	s.br, s.bw, bc.br = nil, nil, nil
	s.rd = imapwire.Reader{}

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				panicsTotal.Add(1)
				s.srv.log.Error("panic in backend copier", zap.String("session", s.id), zap.Any("panic", r))
				s.setReason(reasonError)
				s.abort()
			}
		}()
		sp.copyBackendToClient(backPending)
	}()
	sp.copyClientToBackend(clientPending)
	<-done
}

// copyBackendToClient forwards server bytes to the client until the
// backend closes or fails.
func (sp *splice) copyBackendToClient(pending []byte) {
	s := sp.s
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	if len(pending) > 0 {
		if err := sp.cw.forward(pending); err != nil {
			sp.endClientGone(err)
			return
		}
		s.bytesOut.Add(int64(len(pending)))
	}
	for {
		n, err := sp.back.Read(buf)
		if n > 0 {
			if sp.inIdle.Load() {
				// Backend traffic during IDLE keeps the session alive.
				s.extendRead(sp.idleTimeout())
			}
			if werr := sp.cw.forward(buf[:n]); werr != nil {
				sp.endClientGone(werr)
				return
			}
			s.bytesOut.Add(int64(n))
		}
		if err != nil {
			sp.backendEnded(err)
			return
		}
	}
}

// backendEnded handles the end of the server stream.
func (sp *splice) backendEnded(err error) {
	s := sp.s
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
			s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			sp.cw.inject("* BYE [UNAVAILABLE] Backend connection lost")
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
	sp.s.setReason(reasonClientEOF)
	sp.back.SetDeadline(time.Unix(1, 0))
	sp.s.stopClient()
}

func (sp *splice) idleTimeout() time.Duration {
	if d := sp.s.srv.opts.Policy.IdleTimeout; d > 0 {
		return d
	}
	return 31 * time.Minute
}

// copyClientToBackend forwards client bytes to the backend until the
// client closes, goes idle for too long, or the backend side ends.
func (sp *splice) copyClientToBackend(pending []byte) {
	s := sp.s
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	if len(pending) > 0 {
		if err := sp.forwardClient(pending); err != nil {
			sp.clientEnded(err, false)
			return
		}
	}
	idle := sp.idleTimeout()
	for {
		s.extendRead(idle)
		n, err := s.conn.Read(buf)
		if n > 0 {
			if werr := sp.forwardClient(buf[:n]); werr != nil {
				sp.clientEnded(werr, true)
				return
			}
		}
		if err != nil {
			sp.clientEnded(err, false)
			return
		}
	}
}

// clientEnded handles the end of the client stream.
func (sp *splice) clientEnded(err error, backendWrite bool) {
	s := sp.s
	sp.clientDone.Store(true)
	switch {
	case backendWrite:
		// Writing to the backend failed: the backend copier reports why.
		sp.back.SetReadDeadline(time.Now().Add(time.Second))
		return
	case isTimeout(err) && (s.reasonSet() || s.stopping.Load()):
		// Deadline set by the backend copier or a shutdown.
	case isTimeout(err):
		s.setReason(reasonIdleTimeout)
		s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		sp.cw.inject("* BYE Autologout; idle for too long")
		sp.back.SetDeadline(time.Unix(1, 0))
		return
	case sp.logoutSent.Load():
		s.setReason(reasonLogout)
	default:
		s.setReason(reasonClientEOF)
	}
	// Half-close: the backend sees EOF and may finish its answers; the
	// deadline bounds how long that direction stays open.
	if cw, ok := sp.back.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	sp.back.SetReadDeadline(time.Now().Add(halfCloseTimeout))
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
func (sp *splice) forwardClient(data []byte) error {
	s := sp.s
	s.bytesIn.Add(int64(len(data)))
	bufs := sp.bufs[:0]
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
			if sp.holding && sp.answerLocally(verb) {
				sp.hold = sp.hold[:0]
				start = i
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
	if len(bufs) == 1 {
		_, err := sp.back.Write(bufs[0])
		return err
	}
	_, err := bufs.WriteTo(sp.back)
	return err
}

// answerLocally answers the commands imapedge must not forward after
// login. It reports whether the command line is to be dropped.
func (sp *splice) answerLocally(verb []byte) bool {
	tag := string(sp.client.Tag())
	switch {
	case imapwire.EqualFold(verb, "COMPRESS"):
		sp.cw.inject(tag + " NO [CANNOT] Compression is not available.")
		return true
	case imapwire.EqualFold(verb, "STARTTLS"):
		sp.cw.inject(tag + " BAD [CLIENTBUG] STARTTLS is not valid after login.")
		return true
	}
	return false
}

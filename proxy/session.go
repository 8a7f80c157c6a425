package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/imapedge/imapedge/proxy/imapwire"
)

// End reasons of a session (DESIGN.md §5).
const (
	reasonLogout         = "logout"
	reasonClientEOF      = "client_eof"
	reasonBackendLost    = "backend_lost"
	reasonIdleTimeout    = "idle_timeout"
	reasonPreauthTimeout = "preauth_timeout"
	reasonAuthFailed     = "auth_failed"
	reasonRefused        = "refused"
	reasonShutdown       = "shutdown"
	reasonError          = "error"
)

var panicsTotal atomic.Int64

// session is one client connection, from accept to close.
type session struct {
	srv      *Server
	ln       Listener
	id       string
	start    time.Time
	raw      net.Conn // the accepted TCP connection
	conn     net.Conn // raw, or the TLS connection over it
	br       *bufio.Reader
	bw       *bufio.Writer
	rd       imapwire.Reader
	clientIP netip.Addr
	// clientIPStr is clientIP as text, for logs and events.
	clientIPStr string
	port        int

	tlsActive bool
	tlsVer    string
	sni       string

	askedCapability bool
	badCommands     int
	authFailures    int
	clientID        []string // ID fields the client sent, for the session log

	user    string // normalized, once known
	backend string

	closeOnce sync.Once
	// stopping is set before deadlines move into the past to end the
	// session; whoever sets a future deadline checks it afterwards.
	stopping        atomic.Bool
	mu              sync.Mutex
	reason          string
	bytesIn         atomic.Int64
	bytesOut        atomic.Int64
	commands        atomic.Int64
	back            net.Conn // backend connection once logged in
	sp              atomic.Pointer[splice]
	readDeadline    atomic.Int64 // client idle deadline (UnixNano) while logged in
	readArmed       atomic.Bool  // the client socket has a read deadline (extendRead)
	backEOF         atomic.Bool  // the backend closed its side of the connection
	compressOffered bool         // COMPRESS=DEFLATE advertised after login
	pendingReason   string       // reason used when the client leaves before login
}

func newSession(s *Server, l Listener, c net.Conn) *session {
	sess := &session{srv: s, ln: l, id: newSessionID(), start: time.Now(), raw: c, conn: c}
	if ap, ok := remoteAddrPort(c); ok {
		sess.clientIP, sess.port = ap.Addr().Unmap(), int(ap.Port())
		sess.clientIPStr = sess.clientIP.String()
	}
	return sess
}

// remoteAddrPort returns c's peer address; a sockConn (under its parkConn)
// knows it without an allocation.
func remoteAddrPort(c net.Conn) (netip.AddrPort, bool) {
	if pc, ok := c.(*parkConn); ok {
		c = pc.tcpConn
	}
	if a, ok := c.(interface{ remoteAddrPort() netip.AddrPort }); ok {
		return a.remoteAddrPort(), true
	}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap, err == nil
}

// abortiveClose makes the coming Close of a plain TCP backend connection
// reset it (SO_LINGER 0) instead of sending a FIN: for a backend that has
// closed its side already (after LOGOUT, or after the half-close that
// follows the client leaving), so nothing is lost. The backend's socket
// then ends at once instead of waiting in TIME_WAIT for a minute (the
// port exhaustion HAProxy's "option nolinger" avoids), and on loopback
// the close costs one packet instead of three.
func abortiveClose(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok { // *net.TCPConn, *parkConn; not TLS
		tc.SetLinger(0)
	}
}

// sessionIDEncoding is base32 (RFC 4648) in lower case, unpadded.
var sessionIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newSessionID returns 16 characters of base32: 80 random bits from the
// runtime's per-thread ChaCha8 generator (seeded from the system's
// entropy), cheaper than crypto/rand; a session ID is a log key, not a
// secret.
func newSessionID() string {
	var b [10]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint16(b[8:], uint16(rand.Uint32()))
	return sessionIDEncoding.EncodeToString(b[:])
}

func (s *session) setReason(r string) {
	s.mu.Lock()
	if s.reason == "" {
		s.reason = r
	}
	s.mu.Unlock()
}

// abort ends the session at once (server shutdown): deadlines in the past
// unblock every read and write, and the goroutines unwind by themselves.
func (s *session) abort() {
	s.setReason(reasonShutdown)
	s.stopping.Store(true)
	past := time.Unix(1, 0)
	s.raw.SetDeadline(past)
	s.mu.Lock()
	if s.back != nil {
		s.back.SetDeadline(past)
	}
	s.mu.Unlock()
	if sp := s.sp.Load(); sp != nil {
		sp.wake()
	}
}

// extendRead moves the client's idle deadline to now+d. The socket's own
// read deadline is set only the first time (and on a compressed leg,
// where a timeout cannot be retried): one that fires before the deadline
// the session wants is set again by the client copier (rearmClient), so a
// busy session does not pay a timer update for every chunk it sends.
func (s *session) extendRead(d time.Duration) {
	t := time.Now().Add(d)
	s.readDeadline.Store(t.UnixNano())
	if s.readArmed.Load() {
		if sp := s.sp.Load(); sp == nil || !sp.compressed.Load() {
			return
		}
	}
	s.readArmed.Store(true)
	s.conn.SetReadDeadline(t)
	if s.stopping.Load() {
		s.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// stopClient ends the client side: the client copier's blocked (or
// parked) read returns at once.
func (s *session) stopClient() {
	s.stopping.Store(true)
	s.conn.SetReadDeadline(time.Unix(1, 0))
	if sp := s.sp.Load(); sp != nil {
		sp.wake()
	}
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		if sp := s.sp.Load(); sp != nil {
			sp.unregister()
		}
		// A *tls.Conn closes the socket under it; a second Close would
		// only make an error.
		s.conn.Close()
		if _, isTLS := s.conn.(*tls.Conn); !isTLS && s.conn != s.raw {
			s.raw.Close()
		}
		s.mu.Lock()
		back, reason := s.back, s.reason
		if reason == "" {
			reason = s.pendingReason
		}
		s.mu.Unlock()
		if back != nil {
			if s.backEOF.Load() {
				abortiveClose(back)
			}
			back.Close()
		}
		if reason == "" {
			reason = reasonClientEOF
		}
		fp := fieldPool.Get().(*[]zap.Field)
		*fp = s.endFields((*fp)[:0], reason)
		s.logSessionEvent("session_end", fp)
	})
}

func (s *session) limits() imapwire.Limits {
	p := s.srv.opts.Policy.Preauth
	lim := imapwire.DefaultLimits
	if p.MaxLine > 0 {
		lim.MaxLine = p.MaxLine
	}
	if p.MaxLiteral >= 0 {
		lim.MaxLiteral = p.MaxLiteral
	}
	if lim.MaxCommand < lim.MaxLine+4*lim.MaxLiteral {
		lim.MaxCommand = lim.MaxLine + 4*lim.MaxLiteral
	}
	return lim
}

// Pre-auth buffers are pooled: a session holds them only until login.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

func (s *session) setupIO() {
	s.releaseIO()
	s.br = readerPool.Get().(*bufio.Reader)
	s.br.Reset(s.conn)
	s.bw = writerPool.Get().(*bufio.Writer)
	s.bw.Reset(s.conn)
	s.rd = imapwire.Reader{R: s.br, Lim: s.limits()}
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// releaseIO gives the pre-auth buffers back. Buffered input must have
// been consumed or copied before.
func (s *session) releaseIO() {
	if s.br != nil {
		putReader(s.br)
		s.br = nil
	}
	if s.bw != nil {
		s.bw.Reset(nil)
		writerPool.Put(s.bw)
		s.bw = nil
	}
	s.rd = imapwire.Reader{}
}

// preauthDeadline is when the session must have logged in.
func (s *session) preauthDeadline() time.Time {
	timeout := s.srv.opts.Policy.Preauth.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	return s.start.Add(timeout)
}

// serve runs the pre-auth state machine and, after a successful login,
// starts the splice. It reports whether the splice's goroutines now own the
// session (they end it); otherwise the caller does.
func (s *session) serve() (detached bool) {
	pol := s.srv.opts.Policy
	deadline := s.preauthDeadline()
	s.raw.SetDeadline(deadline)
	if s.ln.TLS == ListenerImplicit {
		if !s.handshake() {
			return
		}
	}
	s.setupIO()
	s.logStart()
	s.writeLine("* OK [CAPABILITY " + s.capabilities() + "] imapedge ready")
	if s.flush() != nil {
		return
	}
	maxBad := pol.Preauth.MaxBadCommands
	if maxBad <= 0 {
		maxBad = 3
	}
	for {
		s.raw.SetDeadline(deadline)
		if s.stopping.Load() {
			return // aborted (shutdown): its past deadline may just have been replaced
		}
		cmd, err := s.rd.ReadCommand(s.onLiteral)
		if err != nil {
			if !s.handleReadError(err, maxBad) {
				return
			}
			continue
		}
		done, loggedIn := s.dispatch(cmd)
		if s.flush() != nil {
			return
		}
		if loggedIn != nil {
			s.splice(loggedIn)
			return true
		}
		if done {
			return
		}
		if s.badCommands >= maxBad {
			s.writeLine("* BYE Too many invalid commands.")
			s.flush()
			s.setReason(reasonError)
			return
		}
	}
}

// handleReadError answers a bad command; it returns false when the
// connection must end.
func (s *session) handleReadError(err error, maxBad int) bool {
	var pe *imapwire.ProtocolError
	var rej *imapwire.RejectedError
	switch {
	case errors.As(err, &rej):
		s.respond(rej.Tag, rej.Status, rej.Code, rej.Msg)
		if rej.Status == "BAD" {
			s.badCommands++
		}
	case errors.As(err, &pe):
		if pe.Bye {
			s.writeLine("* BYE " + pe.Msg)
			s.flush()
			s.setReason(reasonError)
			return false
		}
		tag := pe.Tag
		if tag == "" {
			tag = "*"
		}
		s.respond(tag, "BAD", pe.Code, pe.Msg)
		s.badCommands++
		if pe.Fatal {
			s.writeLine("* BYE " + pe.Msg)
			s.flush()
			s.setReason(reasonError)
			return false
		}
	default:
		if isTimeout(err) {
			s.setReason(reasonPreauthTimeout)
			s.raw.SetWriteDeadline(time.Now().Add(time.Second))
			s.writeLine("* BYE Disconnected for inactivity.")
			s.flush()
		} else {
			s.setReason(reasonClientEOF)
		}
		return false
	}
	if s.flush() != nil {
		return false
	}
	if s.badCommands >= maxBad {
		s.writeLine("* BYE Too many invalid commands.")
		s.flush()
		s.setReason(reasonError)
		return false
	}
	return true
}

func isTimeout(err error) bool {
	// Fast paths first: errors.As walks the chain by reflection, and every
	// session's last read ends in an error checked here.
	if err == nil || err == io.EOF {
		return false
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// onLiteral decides on each literal the client announces before login.
func (s *session) onLiteral(cmd *imapwire.Command, n int64, nonSync bool) error {
	switch cmd.Name {
	case "LOGIN":
		if !s.loginAllowed() {
			return &imapwire.Rejection{Status: "NO", Code: "PRIVACYREQUIRED", Msg: "Plaintext authentication disallowed on non-secure connections."}
		}
	case "ID":
	default:
		return &imapwire.Rejection{Status: "BAD", Msg: "Unexpected literal."}
	}
	if !nonSync {
		s.writeLine("+ Ready for literal data")
		return s.flush()
	}
	return nil
}

func (s *session) loginAllowed() bool {
	return s.tlsActive || s.srv.opts.Policy.PlaintextAllowed(s.clientIP)
}

// capabilities is the pre-auth capability list for the connection's state.
func (s *session) capabilities() string {
	caps := "IMAP4rev1 ID LITERAL- SASL-IR"
	if s.ln.TLS == ListenerStartTLS && !s.tlsActive {
		caps += " STARTTLS"
	}
	if s.loginAllowed() {
		caps += " AUTH=PLAIN AUTH=LOGIN"
	} else {
		caps += " LOGINDISABLED"
	}
	return caps
}

func (s *session) writeLine(line string) {
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
}

func (s *session) respond(tag, status, code, msg string) {
	s.bw.WriteString(tag)
	s.bw.WriteByte(' ')
	s.bw.WriteString(status)
	s.bw.WriteByte(' ')
	if code != "" {
		s.bw.WriteByte('[')
		s.bw.WriteString(code)
		s.bw.WriteString("] ")
	}
	s.bw.WriteString(msg)
	s.bw.WriteString("\r\n")
}

func (s *session) flush() error { return s.bw.Flush() }

// dispatch runs one pre-auth command. done reports that the connection must
// end; a non-nil backend means the login succeeded and the splice follows.
func (s *session) dispatch(cmd *imapwire.Command) (done bool, back *backendConn) {
	switch cmd.Name {
	case "CAPABILITY":
		if len(cmd.Args) != 0 {
			return s.bad(cmd, "CAPABILITY takes no arguments.")
		}
		s.askedCapability = true
		s.writeLine("* CAPABILITY " + s.capabilities())
		s.respond(cmd.Tag, "OK", "", "Pre-login capabilities listed, post-login capabilities have more.")
	case "NOOP":
		s.respond(cmd.Tag, "OK", "", "NOOP completed.")
	case "LOGOUT":
		s.writeLine("* BYE Logging out")
		s.respond(cmd.Tag, "OK", "", "Logout completed.")
		s.flush()
		s.setReason(reasonLogout)
		return true, nil
	case "ENABLE":
		s.respond(cmd.Tag, "OK", "", "ENABLE ignored in non-authenticated state.")
	case "ID":
		if !s.readID(cmd) {
			return s.bad(cmd, "Invalid ID parameters.")
		}
		s.writeLine(`* ID ("name" "imapedge")`)
		s.respond(cmd.Tag, "OK", "", "ID completed.")
	case "STARTTLS":
		if len(cmd.Args) != 0 {
			return s.bad(cmd, "STARTTLS takes no arguments.")
		}
		if s.ln.TLS != ListenerStartTLS || s.tlsActive {
			return s.bad(cmd, "TLS is already active.")
		}
		s.respond(cmd.Tag, "OK", "", "Begin TLS negotiation now.")
		if s.flush() != nil {
			return true, nil
		}
		if n := s.br.Buffered(); n > 0 {
			// RFC 9051 §6.2.1: bytes pipelined after STARTTLS are
			// discarded (CVE-2011-0411 class).
			s.srv.log.Warn("discarded plaintext pipelined after STARTTLS", zap.String("session", s.id), zap.String("client_ip", s.clientIPStr), zap.Int("bytes", n))
		}
		if !s.handshake() {
			return true, nil
		}
		s.setupIO()
		s.askedCapability = false
		s.clientID = nil
	case "LOGIN":
		if len(cmd.Args) != 2 || !cmd.Args[0].IsString() || !cmd.Args[1].IsString() {
			return s.bad(cmd, "LOGIN expects a user name and a password.")
		}
		if !s.loginAllowed() {
			s.respond(cmd.Tag, "NO", "PRIVACYREQUIRED", "Plaintext authentication disallowed on non-secure connections.")
			return false, nil
		}
		cred := credentials{authcid: string(cmd.Args[0].Value), secret: string(cmd.Args[1].Value), mech: "LOGIN"}
		return false, s.login(cmd.Tag, cred)
	case "AUTHENTICATE":
		return s.authenticate(cmd)
	default:
		return s.bad(cmd, "Unknown or invalid command in non-authenticated state.")
	}
	return false, nil
}

func (s *session) bad(cmd *imapwire.Command, msg string) (bool, *backendConn) {
	s.respond(cmd.Tag, "BAD", "", msg)
	s.badCommands++
	return false, nil
}

// readID records the client's ID fields (RFC 2971 §3.3 limits) for the
// session log; values are never forwarded as they are.
func (s *session) readID(cmd *imapwire.Command) bool {
	a := cmd.Args
	if len(a) == 1 && a[0].IsNIL() {
		return true
	}
	if len(a) < 2 || a[0].Kind != imapwire.TokLParen || a[len(a)-1].Kind != imapwire.TokRParen {
		return false
	}
	a = a[1 : len(a)-1]
	if len(a)%2 != 0 || len(a) > 60 {
		return false
	}
	var fields []string
	for i := 0; i < len(a); i += 2 {
		k, v := a[i], a[i+1]
		if !k.IsString() || k.Kind == imapwire.TokAtom || !(v.IsString() || v.IsNIL()) {
			return false
		}
		if len(k.Value) > 30 || len(v.Value) > 1024 {
			return false
		}
		val := string(v.Value)
		if v.IsNIL() {
			val = ""
		}
		fields = append(fields, strings.ToLower(string(k.Value)), sanitizeLog(val))
	}
	s.clientID = fields
	return true
}

// sanitizeLog keeps a client-supplied value printable and short.
func sanitizeLog(v string) string {
	if len(v) > 128 {
		v = v[:128]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, v)
}

// handshake runs the server side of TLS on the raw connection.
func (s *session) handshake() bool {
	tc := tls.Server(s.raw, s.srv.tlsConfig())
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.opts.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.srv.log.Debug("tls handshake failed", zap.String("session", s.id), zap.String("client_ip", s.clientIPStr), zap.Error(err))
		s.setReason(reasonError)
		return false
	}
	st := tc.ConnectionState()
	s.conn, s.tlsActive, s.sni = tc, true, st.ServerName
	s.tlsVer = tls.VersionName(st.Version)
	return true
}

func (s *session) logStart() {
	fp := fieldPool.Get().(*[]zap.Field)
	*fp = s.startFields((*fp)[:0])
	s.logSessionEvent("session_start", fp)
}

// logSessionEvent writes a session event to the operational log and, when
// audit is on, to the audit stream, then gives fp back to fieldPool.
func (s *session) logSessionEvent(msg string, fp *[]zap.Field) {
	s.srv.log.Info(msg, *fp...)
	if s.srv.opts.Audit != nil {
		s.srv.opts.Audit.Info(msg, *fp...)
	}
	clear(*fp)
	fieldPool.Put(fp)
}

// State reports what the session is doing (StateIdle, StateIdleCommand,
// StateBusy; "preauth" before login) and whether its server stream is at a
// response boundary. Kicks and drains inject their BYE only there.
func (s *session) State() (state string, atBoundary bool) {
	if sp := s.sp.Load(); sp != nil {
		return sp.state()
	}
	return "preauth", false
}

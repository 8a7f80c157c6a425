package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/imapedge/imapedge/proxy/imapwire"
	"github.com/imapedge/imapedge/routing"
)

// backendConn is the proxy's own IMAP client connection to a backend,
// from dial to the end of login.
type backendConn struct {
	b    *routing.Backend
	conn net.Conn // raw, or the TLS connection over it
	raw  net.Conn // the TCP connection
	br   *bufio.Reader
	caps *capList // capabilities currently advertised; nil: not known
	tls  bool
}

// logLogin writes the login line; the client's ID fields only when it
// sent some (as on session_end), so that the usual line has only plain
// fields (see cmd/imapedge's fastJSON).
func (s *session) logLogin(user, backend, mech string) {
	fields := [6]zap.Field{zap.String("event", "login"), zap.String("session", s.id), zap.String("user", user),
		zap.String("backend", backend), zap.String("mechanism", mech)}
	n := 5
	if len(s.clientID) > 0 {
		fields[n] = zap.Strings("client_id", s.clientID)
		n++
	}
	s.srv.log.Info("login", fields[:n]...)
}

// connectError is a failure before any credentials were sent: the next
// candidate backend may be tried.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

const maxBackendLine = 64 << 10

// dialBackend connects to b, reads its greeting and, for STARTTLS
// backends, upgrades the connection. The deadline bounds the whole of it;
// w (or ctx, for a backend given by name) ends the connect at its timeout
// or at server shutdown, and cancelling ctx ends TLS handshakes.
// Without keepAliveNow the connection gets TCP keep-alive only when its
// session parks (park.go): a busy session learns of a dead backend from
// its own traffic, and a login saves four system calls.
func dialBackend(ctx context.Context, w *connectWatch, deadline time.Time, b *routing.Backend, keepAliveNow bool) (*backendConn, error) {
	connectTimeout := b.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = 5 * time.Second
	}
	connectBy := time.Now().Add(connectTimeout)
	if deadline.Before(connectBy) {
		connectBy = deadline
	}
	c, err := connectBackend(ctx, w, connectBy, b.Address, keepAliveNow)
	if err != nil {
		return nil, &connectError{err}
	}
	c.SetDeadline(deadline)
	c = newParkConn(c)
	bc := &backendConn{b: b, conn: c, raw: c}
	if err := bc.open(ctx, deadline); err != nil {
		c.Close()
		bc.releaseReader()
		return nil, &connectError{err}
	}
	return bc, nil
}

// connectBackend connects to address by the deadline. An IP address is
// connected to with no deadline and no cancellable context: w bounds the
// connect. A host name is resolved and connected to with a context
// deadline as usual, so that the name lookup is bounded too and its
// addresses are raced (RFC 6555).
func connectBackend(ctx context.Context, w *connectWatch, deadline time.Time, address string, keepAliveNow bool) (net.Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	if keepAliveNow {
		d.KeepAliveConfig = keepAlive
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		d.Deadline = deadline
		return d.DialContext(ctx, "tcp", address)
	}
	if haveSockConn && ap.Addr().Zone() == "" {
		return dialSock(ap, w, deadline, keepAliveNow)
	}
	pc := &pendingConnect{deadline: deadline.UnixNano()}
	d.Control = func(_, _ string, rc syscall.RawConn) error { return w.control(pc, rc) }
	c, err := d.Dial("tcp", address)
	if cause := w.done(pc); cause != nil {
		if c != nil {
			c.Close() // connected just as it was cut short
		}
		return nil, fmt.Errorf("dial tcp %s: %w", address, cause)
	}
	return c, err
}

// releaseReader gives the login reader back to the pool (readerPool, the
// same 4 KiB readers the pre-auth state machine uses). What it buffered
// must have been consumed or copied before.
func (bc *backendConn) releaseReader() {
	if bc.br != nil {
		putReader(bc.br)
		bc.br = nil
	}
}

func (bc *backendConn) open(ctx context.Context, deadline time.Time) error {
	if bc.b.TLS == routing.TLSImplicit {
		if err := bc.startTLS(ctx, deadline); err != nil {
			return err
		}
	}
	bc.br = readerPool.Get().(*bufio.Reader)
	bc.br.Reset(bc.conn)
	line, err := bc.readLine()
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	word, rest := imapwire.FirstWord(line)
	status, rest := imapwire.FirstWord(rest)
	if string(word) != "*" {
		return fmt.Errorf("malformed greeting")
	}
	switch {
	case imapwire.EqualFold(status, "OK"):
	case imapwire.EqualFold(status, "PREAUTH"):
		return errors.New("backend greeted with PREAUTH")
	case imapwire.EqualFold(status, "BYE"):
		return fmt.Errorf("backend refused the connection: %s", sanitizeLog(string(rest)))
	default:
		return errors.New("malformed greeting")
	}
	bc.caps = capsFromCode(rest)
	if bc.b.TLS == routing.TLSStartTLS {
		if bc.caps == nil {
			if err := bc.capability(); err != nil {
				return err
			}
		}
		if !bc.caps.has("STARTTLS") {
			return errors.New("backend does not offer STARTTLS")
		}
		if _, err := io.WriteString(bc.conn, "S STARTTLS\r\n"); err != nil {
			return err
		}
		status, _, _, err := bc.readTagged("S")
		if err != nil {
			return err
		}
		if status != "OK" {
			return fmt.Errorf("backend refused STARTTLS: %s", status)
		}
		if bc.br.Buffered() > 0 {
			// Response injection before TLS (RFC 9051 §6.2.1).
			return errors.New("backend sent data after its STARTTLS answer")
		}
		if err := bc.startTLS(ctx, deadline); err != nil {
			return err
		}
		bc.br.Reset(bc.conn)
		bc.caps = nil // capabilities must be asked again after TLS
	}
	return nil
}

func (bc *backendConn) startTLS(ctx context.Context, deadline time.Time) error {
	cfg := bc.b.TLSConfig
	if cfg == nil {
		return errors.New("backend has no TLS configuration")
	}
	tc := tls.Client(bc.conn, cfg)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	bc.conn, bc.tls = tc, true
	return nil
}

// readLine reads one response line (without CRLF); literals announced at
// the end of data lines are skipped, bounded.
func (bc *backendConn) readLine() ([]byte, error) {
	var buf []byte
	for {
		frag, err := bc.br.ReadSlice('\n')
		if len(buf)+len(frag) > maxBackendLine {
			return nil, errors.New("backend line too long")
		}
		if err == nil {
			if buf == nil {
				return imapwire.TrimCRLF(frag), nil
			}
			return imapwire.TrimCRLF(append(buf, frag...)), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		buf = append(buf, frag...)
	}
}

// readTagged reads responses until the one tagged tag. Untagged
// CAPABILITY responses update bc.caps. It returns the status word, the
// response code (inside the brackets) and the text after it.
func (bc *backendConn) readTagged(tag string) (status, code, text string, err error) {
	for {
		line, err := bc.readLine()
		if err != nil {
			return "", "", "", err
		}
		word, rest := imapwire.FirstWord(line)
		if string(word) == "*" {
			kw, args := imapwire.FirstWord(rest)
			switch {
			case imapwire.EqualFold(kw, "CAPABILITY"):
				bc.caps = parseCaps(args)
			case imapwire.EqualFold(kw, "BYE"):
				return "", "", "", fmt.Errorf("backend closed: %s", sanitizeLog(string(args)))
			}
			if n, _, _, _, ok := imapwire.LiteralHeader(line); ok && !isStatus(kw) {
				if n > maxBackendLine {
					return "", "", "", errors.New("backend literal too large during login")
				}
				if _, err := bc.br.Discard(int(n)); err != nil {
					return "", "", "", err
				}
			}
			continue
		}
		if string(word) != tag {
			continue // continuation requests are handled by the callers
		}
		st, rest := imapwire.FirstWord(rest)
		status = strings.ToUpper(string(st))
		code, text = splitCode(rest)
		return status, code, text, nil
	}
}

func isStatus(kw []byte) bool {
	return imapwire.EqualFold(kw, "OK") || imapwire.EqualFold(kw, "NO") || imapwire.EqualFold(kw, "BAD") || imapwire.EqualFold(kw, "PREAUTH") || imapwire.EqualFold(kw, "BYE")
}

// splitCode splits "[CODE args] text" into "CODE args" and "text".
func splitCode(rest []byte) (code, text string) {
	if len(rest) > 0 && rest[0] == '[' {
		if i := bytes.IndexByte(rest, ']'); i > 0 {
			return string(rest[1:i]), string(bytes.TrimLeft(rest[i+1:], " "))
		}
	}
	return "", string(rest)
}

// capsFromCode reads "[CAPABILITY a b c] text"; nil when absent.
func capsFromCode(rest []byte) *capList {
	code, _ := splitCode(rest)
	return capsInCode(code)
}

// capsInCode reads the response code "CAPABILITY a b c"; nil when it is
// another code.
func capsInCode(code string) *capList {
	kw, args, _ := strings.Cut(code, " ")
	if !strings.EqualFold(kw, "CAPABILITY") {
		return nil
	}
	return parseCaps([]byte(strings.TrimLeft(args, " ")))
}

func hasCap(caps []string, name string) bool {
	for _, c := range caps {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

func (bc *backendConn) capability() error {
	if _, err := io.WriteString(bc.conn, "C CAPABILITY\r\n"); err != nil {
		return err
	}
	status, _, _, err := bc.readTagged("C")
	if err != nil {
		return err
	}
	if status != "OK" || bc.caps == nil {
		return errors.New("backend CAPABILITY failed")
	}
	return nil
}

// loginResult is the backend's answer to the proxy's login.
type loginResult struct {
	ok   bool
	code string // response code atom of a failure
	text string
	caps *capList // post-login capabilities on success
}

var errPlaintextRefused = errors.New("refusing to send a password over plaintext to a non-loopback backend (allow_plaintext_login is false)")

// login authenticates as the client on the backend, by AUTHENTICATE PLAIN
// when offered, else by LOGIN.
func (bc *backendConn) login(cred credentials) (loginResult, error) {
	if !bc.tls && !bc.b.AllowPlaintextLogin && !isLoopback(bc.conn) {
		return loginResult{}, errPlaintextRefused
	}
	if bc.caps == nil {
		if err := bc.capability(); err != nil {
			return loginResult{}, err
		}
	}
	var err error
	switch {
	case bc.caps.has("AUTH=PLAIN"):
		err = bc.authPlain(cred)
	case !bc.caps.has("LOGINDISABLED") && cred.authzid == "":
		err = bc.loginCommand(cred)
	default:
		return loginResult{}, errors.New("backend offers no usable login mechanism")
	}
	if err != nil {
		return loginResult{}, err
	}
	bc.caps = nil
	status, code, text, err := bc.readTagged("L")
	if err != nil {
		return loginResult{}, err
	}
	if status != "OK" {
		atom, _ := imapwire.FirstWord([]byte(code))
		return loginResult{code: strings.ToUpper(string(atom)), text: text}, nil
	}
	caps := capsInCode(code)
	if caps == nil {
		caps = bc.caps
	}
	if caps == nil {
		if err := bc.capability(); err != nil {
			return loginResult{}, err
		}
		caps = bc.caps
	}
	return loginResult{ok: true, caps: caps}, nil
}

func (bc *backendConn) authPlain(cred credentials) error {
	msg := make([]byte, 0, len(cred.authzid)+len(cred.authcid)+len(cred.secret)+2)
	msg = append(msg, cred.authzid...)
	msg = append(msg, 0)
	msg = append(msg, cred.authcid...)
	msg = append(msg, 0)
	msg = append(msg, cred.secret...)
	enc := base64.StdEncoding.EncodeToString(msg)
	clear(msg)
	if bc.caps.has("SASL-IR") {
		_, err := io.WriteString(bc.conn, "L AUTHENTICATE PLAIN "+enc+"\r\n")
		return err
	}
	if _, err := io.WriteString(bc.conn, "L AUTHENTICATE PLAIN\r\n"); err != nil {
		return err
	}
	if err := bc.waitContinuation("L"); err != nil {
		return err
	}
	_, err := io.WriteString(bc.conn, enc+"\r\n")
	return err
}

// waitContinuation reads until a "+" line; a tagged answer instead (the
// backend refused the command) is an error.
func (bc *backendConn) waitContinuation(tag string) error {
	for {
		line, err := bc.readLine()
		if err != nil {
			return err
		}
		if len(line) > 0 && line[0] == '+' {
			return nil
		}
		word, _ := imapwire.FirstWord(line)
		if string(word) == tag {
			return fmt.Errorf("backend refused the login command: %s", sanitizeLog(string(line)))
		}
	}
}

func (bc *backendConn) loginCommand(cred credentials) error {
	literalPlus := bc.caps.has("LITERAL+")
	literalMinus := bc.caps.has("LITERAL-")
	var out []byte
	out = append(out, "L LOGIN "...)
	args := [2]string{cred.authcid, cred.secret}
	for i, a := range args {
		if i > 0 {
			out = append(out, ' ')
		}
		if !imapwire.NeedsLiteral(a) && len(a) < 1024 {
			out = imapwire.AppendQuoted(out, a)
			continue
		}
		nonSync := literalPlus || (literalMinus && len(a) <= 4096)
		out = append(out, '{')
		out = strconv.AppendInt(out, int64(len(a)), 10)
		if nonSync {
			out = append(out, "+}\r\n"...)
		} else {
			out = append(out, "}\r\n"...)
			if _, err := bc.conn.Write(out); err != nil {
				return err
			}
			clear(out)
			out = out[:0]
			if err := bc.waitContinuation("L"); err != nil {
				return err
			}
		}
		out = append(out, a...)
	}
	out = append(out, "\r\n"...)
	_, err := bc.conn.Write(out)
	clear(out)
	return err
}

func isLoopback(c net.Conn) bool {
	ap, ok := remoteAddrPort(c)
	return ok && ap.Addr().Unmap().IsLoopback()
}

// filterCaps removes what must not reach a logged-in client: STARTTLS,
// LOGINDISABLED, AUTH=, SASL-IR, LOGIN-REFERRALS, and COMPRESS= unless
// keepDeflate (imapedge terminates COMPRESS=DEFLATE itself, so the
// inspector always sees plaintext). It reports whether COMPRESS=DEFLATE
// was kept.
func filterCaps(caps []string, keepDeflate bool) (string, bool) {
	var b strings.Builder
	kept := false
	for _, c := range caps {
		u := strings.ToUpper(c)
		switch {
		case u == "COMPRESS=DEFLATE" && keepDeflate && !kept:
			kept = true
		case u == "STARTTLS", u == "LOGINDISABLED", u == "SASL-IR", u == "LOGIN-REFERRALS",
			strings.HasPrefix(u, "AUTH="), strings.HasPrefix(u, "COMPRESS="):
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c)
	}
	return b.String(), kept
}

// login resolves the user's backends, logs in on the first reachable one
// and answers the client. It returns the backend connection on success.
func (s *session) login(tag string, cred credentials) *backendConn {
	user := routing.NormalizeUser(cred.routingUser())
	cands, err := s.srv.opts.Routes.Resolve(user)
	if err != nil {
		s.srv.log.Warn("no backend for user", zap.String("session", s.id), zap.String("user", user), zap.Error(err))
		s.srv.metrics.loginBy.get("unavailable").Inc()
		s.respond(tag, "NO", "UNAVAILABLE", "No server available for this account, try again later.")
		return nil
	}
	// The backend login has its own timeout; answering the client must not
	// fail because the client's pre-auth deadline passed meanwhile. (Only
	// when that deadline is near: a deadline of its own for writes costs
	// the socket a second timer.)
	defer func() {
		const answerTime = 30 * time.Second
		if time.Until(s.preauthDeadline()) >= answerTime {
			return
		}
		s.raw.SetWriteDeadline(time.Now().Add(answerTime))
		if s.stopping.Load() {
			s.raw.SetWriteDeadline(time.Unix(1, 0)) // aborted meanwhile
		}
	}()
	for _, b := range cands {
		bc, res, err := s.tryBackend(b, cred)
		var ce *connectError
		switch {
		case err == nil && res.ok:
			s.user, s.backend = user, b.Name
			s.srv.metrics.loginBy.get("ok").Inc()
			caps, deflate := res.caps.filter(s.ln.Compress != CompressStrip && !s.srv.opts.DisableInspection)
			s.compressOffered = deflate
			if s.askedCapability {
				s.writeLine("* CAPABILITY " + caps)
			}
			s.respond(tag, "OK", "CAPABILITY "+caps, "Logged in")
			s.logLogin(user, b.Name, cred.mech)
			return bc
		case errors.As(err, &ce):
			s.srv.log.Warn("backend unreachable", zap.String("session", s.id), zap.String("backend", b.Name), zap.Error(err))
			continue
		case err != nil:
			lvl := zap.WarnLevel
			if errors.Is(err, errPlaintextRefused) {
				lvl = zap.ErrorLevel
			}
			s.srv.log.Log(lvl, "backend login failed", zap.String("session", s.id), zap.String("backend", b.Name), zap.Error(err))
			s.srv.metrics.loginBy.get("unavailable").Inc()
			s.respond(tag, "NO", "UNAVAILABLE", "Server unavailable, try again later.")
			return nil
		}
		switch res.code {
		case "UNAVAILABLE", "LIMIT", "CONTACTADMIN":
			s.srv.metrics.loginBy.get("refused").Inc()
			s.respond(tag, "NO", res.code, oneLine(res.text))
			return nil
		}
		s.srv.metrics.loginBy.get("auth_failed").Inc()
		s.authFailures++
		s.srv.log.Info("login failed", zap.String("event", "login_failed"), zap.String("session", s.id), zap.String("user", user),
			zap.String("backend", b.Name), zap.String("mechanism", cred.mech), zap.Int("failures", s.authFailures))
		s.setReasonOverride(reasonAuthFailed)
		if d := s.srv.opts.Policy.FailureDelay(s.authFailures); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.srv.ctx.Done():
				t.Stop()
			}
		}
		s.respond(tag, "NO", "AUTHENTICATIONFAILED", "Authentication failed.")
		return nil
	}
	s.srv.metrics.loginBy.get("unavailable").Inc()
	s.respond(tag, "NO", "UNAVAILABLE", "Server unavailable, try again later.")
	return nil
}

// tryBackend dials b and logs in; the backend connection is closed unless
// the login succeeded.
func (s *session) tryBackend(b *routing.Backend, cred credentials) (*backendConn, loginResult, error) {
	timeout := b.LoginTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	t0 := time.Now()
	bc, err := dialBackend(s.srv.ctx, &s.srv.connects, t0.Add(timeout), b, s.srv.poller == nil)
	if err != nil {
		return nil, loginResult{}, err
	}
	s.srv.metrics.dialBy.get(b.Name).Observe(time.Since(t0).Seconds())
	s.mu.Lock()
	s.back = bc.conn
	s.mu.Unlock()
	res, err := bc.login(cred)
	if err != nil || !res.ok {
		bc.conn.Close()
		bc.releaseReader()
		s.mu.Lock()
		s.back = nil
		s.mu.Unlock()
		return nil, res, err
	}
	bc.conn.SetDeadline(time.Time{})
	return bc, res, nil
}

// setReasonOverride records the latest end reason of a pre-auth phase
// (a failed login followed by client EOF ends as auth_failed).
func (s *session) setReasonOverride(r string) {
	s.mu.Lock()
	s.pendingReason = r
	s.mu.Unlock()
}

func oneLine(s string) string {
	s = sanitizeLog(s)
	if s == "" {
		return "Try again later."
	}
	return s
}

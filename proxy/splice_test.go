package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapedge/imapedge/proxy/imapwire"
	"github.com/imapedge/imapedge/routing"
)

// fakeBackend is a scripted IMAP server: it greets, accepts any
// AUTHENTICATE PLAIN or LOGIN, then hands the connection to script.
type fakeBackend struct {
	ln       net.Listener
	greeting string
	script   func(c net.Conn, br *bufio.Reader)
	accepted chan struct{}
}

func startFakeBackend(t testing.TB, greeting string, script func(c net.Conn, br *bufio.Reader)) *fakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{ln: ln, greeting: greeting, script: script, accepted: make(chan struct{}, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case fb.accepted <- struct{}{}:
			default:
			}
			go fb.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return fb
}

func (fb *fakeBackend) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if fb.greeting == "" {
		// Never greet: read until the proxy gives up.
		buf := make([]byte, 100)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
	c.Write([]byte(fb.greeting + "\r\n"))
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
		switch {
		case strings.HasPrefix(strings.ToUpper(rest), "CAPABILITY"):
			c.Write([]byte("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR IDLE\r\n" + tag + " OK done\r\n"))
		case strings.HasPrefix(strings.ToUpper(rest), "AUTHENTICATE PLAIN"):
			if strings.Contains(rest, b64("\x00bad\x00bad")) {
				c.Write([]byte(tag + " NO [AUTHENTICATIONFAILED] user bad does not exist\r\n"))
				continue
			}
			if strings.Contains(rest, b64("\x00limited\x00pw")) {
				c.Write([]byte(tag + " NO [LIMIT] Too many connections\r\n"))
				continue
			}
			if strings.Contains(rest, b64("\x00slow\x00pw")) {
				time.Sleep(600 * time.Millisecond)
			}
			c.Write([]byte(tag + " OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE STARTTLS AUTH=PLAIN SASL-IR LOGIN-REFERRALS MOVE] Logged in\r\n"))
			if fb.script != nil {
				fb.script(c, br)
			}
			return
		default:
			c.Write([]byte(tag + " BAD unexpected\r\n"))
		}
	}
}

func fakeBackends(fbs ...*fakeBackend) []*routing.Backend {
	var addrs []string
	for _, fb := range fbs {
		addrs = append(addrs, fb.ln.Addr().String())
	}
	return memBackends(addrs...)
}

const fakeGreeting = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR STARTTLS] fake ready"

func loginFake(t *testing.T, p *testProxy) *rawClient {
	t.Helper()
	c := p.dial(t, "imaps")
	caps := "a OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE MOVE] Logged in"
	if p.srv.opts.Listeners[0].Compress == CompressStrip {
		caps = "a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"
	}
	runTranscript(t, c, []step{expect("* OK"), send("a LOGIN u pw\r\n"), expect(caps)})
	return c
}

func stripCompress(o *Options) {
	for i := range o.Listeners {
		o.Listeners[i].Compress = CompressStrip
	}
}

func TestCapabilityFilterAndLocalAnswers(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, _, _ := strings.Cut(l, " ")
			c.Write([]byte(tag + " OK forwarded " + strings.TrimSpace(l) + "\r\n"))
		}
	})
	p := startProxy(t, fakeBackends(fb), stripCompress)
	c := loginFake(t, p)
	runTranscript(t, c, []step{
		send("z COMPRESS DEFLATE\r\n"), expect("z NO [CANNOT]"),
		send("s STARTTLS\r\n"), expect("s BAD"),
		send("n NOOP\r\n"), expect("n OK forwarded n NOOP"),
	})
	// A COMPRESS line split over two reads is still answered locally.
	c.send("y COMPR")
	time.Sleep(50 * time.Millisecond)
	c.send("ESS DEFLATE\r\nm NOOP\r\n")
	runTranscript(t, c, []step{expect("y NO [CANNOT]"), expect("m OK forwarded m NOOP")})
}

func TestBackendLostAtBoundary(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		br.ReadString('\n')
		c.Write([]byte("* 1 EXISTS\r\n"))
		// then die without BYE
	})
	p := startProxy(t, fakeBackends(fb))
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("n NOOP\r\n"), expect("* 1 EXISTS"), expect("* BYE [UNAVAILABLE] Backend connection lost"), closed})
	waitLog(t, p, "session_end", "reason", "backend_lost")
}

func TestBackendLostInsideLiteral(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		br.ReadString('\n')
		c.Write([]byte("* 1 FETCH (BODY[] {100}\r\nonly part of the body\r\nf OK looks like a tagged line\r\n"))
	})
	p := startProxy(t, fakeBackends(fb))
	c := loginFake(t, p)
	c.send("f FETCH 1 BODY[]\r\n")
	c.expect("* 1 FETCH (BODY[] {100}")
	c.expect("only part of the body")
	c.expect("f OK looks like a tagged line")
	// No BYE may be written into the literal: the connection just closes.
	c.expectEOF()
	waitLog(t, p, "session_end", "reason", "backend_lost")
}

func TestBackendByeOnLogout(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, _ := br.ReadString('\n')
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte("* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n"))
	})
	p := startProxy(t, fakeBackends(fb))
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("l LOGOUT\r\n"), expect("* BYE Logging out"), expect("l OK"), closed})
	waitLog(t, p, "session_end", "reason", "logout")
}

func TestSyncLiteralRefusedByBackend(t *testing.T) {
	// The backend refuses an APPEND literal with a tagged NO instead of
	// "+": the framer must not take the next command for literal octets,
	// so the COMPRESS after it is still answered locally.
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		br.ReadString('\n')
		c.Write([]byte("a1 NO [TRYCREATE] No such mailbox\r\n"))
		answerOK(c, br, "forwarded")
	})
	p := startProxy(t, fakeBackends(fb), stripCompress)
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("a1 APPEND nobox {10}\r\n"), expect("a1 NO [TRYCREATE]"),
		send("z COMPRESS DEFLATE\r\n"), expect("z NO [CANNOT]"),
		send("n NOOP\r\n"), expect("n OK forwarded")})
}

func TestIdleTimeout(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		br.ReadString('\n')
	})
	p := startProxy(t, fakeBackends(fb), func(o *Options) { o.Policy.IdleTimeout = 300 * time.Millisecond })
	c := loginFake(t, p)
	runTranscript(t, c, []step{expect("* BYE Autologout"), closed})
	waitLog(t, p, "session_end", "reason", "idle_timeout")
}

// TestIdleTimeoutMovedByClient: commands keep a session alive well past
// its idle timeout (the socket deadline moves lazily and is set again when
// it fires early), and the timeout still ends it once the client stops;
// on a TLS and on a plaintext client leg.
func TestIdleTimeoutMovedByClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		login func(*testing.T, *testProxy) *rawClient
		opts  []proxyOpt
	}{
		{"tls", loginFake, nil},
		{"plain", loginFakePlain, []proxyOpt{plainLogin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
				answerOK(c, br, "noop")
			})
			opts := append(tc.opts, func(o *Options) { o.Policy.IdleTimeout = 300 * time.Millisecond })
			p := startProxy(t, fakeBackends(fb), opts...)
			c := tc.login(t, p)
			for i := range 8 {
				time.Sleep(120 * time.Millisecond)
				tag := fmt.Sprintf("n%d", i)
				runTranscript(t, c, []step{send(tag + " NOOP\r\n"), expect(tag + " OK noop")})
			}
			runTranscript(t, c, []step{expect("* BYE Autologout"), closed})
			waitLog(t, p, "session_end", "reason", "idle_timeout")
		})
	}
}

// TestBackendResetAfterLogout: once the backend has closed its side
// (after LOGOUT), imapedge closes its own with a reset, not a FIN, so the
// backend keeps no TIME_WAIT socket. The fake backend half-closes and
// reads on: a FIN would show as EOF, a reset as ECONNRESET. The client
// still gets the whole answer and a normal close.
func TestBackendResetAfterLogout(t *testing.T) {
	backErr := make(chan error, 1)
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, _ := br.ReadString('\n')
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte("* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n"))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := br.ReadByte()
		backErr <- err
	})
	p := startProxy(t, fakeBackends(fb))
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("z LOGOUT\r\n"), expect("* BYE Logging out"), expect("z OK Logout completed."), closed})
	select {
	case err := <-backErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("backend read after its close: %v, want ECONNRESET", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("backend script did not finish")
	}
	waitLog(t, p, "session_end", "reason", "logout")
}

func TestIdleKeptAliveByBackendDuringIDLE(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, _ := br.ReadString('\n') // i IDLE
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte("+ idling\r\n"))
		for i := 0; i < 6; i++ {
			time.Sleep(100 * time.Millisecond)
			c.Write([]byte("* OK Still here\r\n"))
		}
		br.ReadString('\n') // DONE
		c.Write([]byte(tag + " OK Idle completed.\r\n"))
		br.ReadString('\n')
	})
	p := startProxy(t, fakeBackends(fb), func(o *Options) { o.Policy.IdleTimeout = 250 * time.Millisecond })
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("i IDLE\r\n"), expect("+ idling")})
	for i := 0; i < 6; i++ {
		c.expect("* OK Still here")
	}
	runTranscript(t, c, []step{send("DONE\r\n"), expect("i OK Idle completed."), expect("* BYE Autologout"), closed})
}

func TestClientEOFHalfCloses(t *testing.T) {
	got := make(chan string, 1)
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		var all strings.Builder
		for {
			l, err := br.ReadString('\n')
			all.WriteString(l)
			if err != nil {
				got <- all.String()
				return
			}
		}
	})
	p := startProxy(t, fakeBackends(fb))
	c := loginFake(t, p)
	c.send("x1 NOOP\r\nx2 NOOP\r\n")
	c.conn.(interface{ CloseWrite() error }).CloseWrite()
	select {
	case s := <-got:
		if s != "x1 NOOP\r\nx2 NOOP\r\n" {
			t.Fatalf("backend got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend did not see EOF")
	}
	waitLog(t, p, "session_end", "reason", "client_eof")
}

func TestBackendFailures(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	silent := startFakeBackend(t, "", nil)
	preauth := startFakeBackend(t, "* PREAUTH welcome", nil)
	bye := startFakeBackend(t, "* BYE go away", nil)
	good := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) { br.ReadString('\n') })

	mk := func(addrs ...string) []*routing.Backend {
		bs := memBackends(addrs...)
		for _, b := range bs {
			b.LoginTimeout = 300 * time.Millisecond
		}
		return bs
	}
	for _, tc := range []struct {
		name  string
		addrs []string
		user  string
		want  string
	}{
		{"unreachable", []string{deadAddr}, "u", "a NO [UNAVAILABLE]"},
		{"never greets", []string{silent.ln.Addr().String()}, "u", "a NO [UNAVAILABLE]"},
		{"preauth greeting", []string{preauth.ln.Addr().String()}, "u", "a NO [UNAVAILABLE]"},
		{"bye greeting", []string{bye.ln.Addr().String()}, "u", "a NO [UNAVAILABLE]"},
		{"failover past dead backends", []string{deadAddr, silent.ln.Addr().String(), good.ln.Addr().String()}, "failover", "a OK [CAPABILITY"},
		{"backend auth failure text hidden", []string{good.ln.Addr().String()}, "bad", "a NO [AUTHENTICATIONFAILED] Authentication failed."},
		{"backend LIMIT passes through", []string{good.ln.Addr().String()}, "limited", "a NO [LIMIT] Too many connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := mk(tc.addrs...)
			// Make every backend a candidate in a fixed order: one pool,
			// resolved by rendezvous; failover tries all of them.
			p := startProxy(t, bs)
			user := tc.user
			if user == "failover" {
				// Pick a user whose rendezvous order puts the working
				// backend last, so both dead ones are tried first.
				for i := 0; ; i++ {
					user = fmt.Sprintf("user%d", i)
					cands, _ := p.srv.opts.Routes.Resolve(user)
					if cands[2].Address == good.ln.Addr().String() && cands[1].Address == silent.ln.Addr().String() {
						break
					}
				}
			}
			c := p.dial(t, "imaps")
			pw := "pw"
			if tc.user == "bad" {
				pw = "bad"
			}
			runTranscript(t, c, []step{expect("* OK"), send("a AUTHENTICATE PLAIN " + b64("\x00"+user+"\x00"+pw) + "\r\n"), expect(tc.want)})
		})
	}
}

func TestNoPasswordsInLogs(t *testing.T) {
	be := startMemBackend(t, map[string]string{"alice": "Pw-Do-Not-Log-1"})
	p := startProxy(t, memBackends(be.addr))
	c := p.dial(t, "imaps")
	runTranscript(t, c, []step{expect("* OK"),
		send("a LOGIN alice Wrong-Pw-Do-Not-Log-2\r\n"), expect("a NO"),
		send("b AUTHENTICATE PLAIN " + b64("\x00alice\x00Wrong-Pw-Do-Not-Log-3") + "\r\n"), expect("b NO"),
		send("c LOGIN {5}\r\n"), expect("+"), send("alice {15}\r\n"), expect("+"), send("Pw-Do-Not-Log-1\r\n"), expect("c OK"),
		send("l LOGOUT\r\n"), until("l OK")})
	waitLog(t, p, "session_end", "reason", "logout")
	for _, e := range p.logs.All() {
		s := e.Message + " " + strings.ReplaceAll(strings.ReplaceAll(fmtFields(e.ContextMap()), "\n", " "), "\r", " ")
		for _, secret := range []string{"Pw-Do-Not-Log", b64("\x00alice\x00Wrong-Pw-Do-Not-Log-3")} {
			if strings.Contains(s, secret) {
				t.Fatalf("log line contains a secret: %s", s)
			}
		}
	}
}

// TestBackendLoginCommand: a backend without AUTH=PLAIN gets LOGIN, with
// quoted strings, or literals for what cannot be quoted.
func TestBackendLoginCommand(t *testing.T) {
	got := make(chan string, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.Write([]byte("* OK [CAPABILITY IMAP4rev1 LITERAL+] no plain here\r\n"))
				br := bufio.NewReader(c)
				var cmd strings.Builder
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					cmd.WriteString(l)
					if strings.HasSuffix(l, "+}\r\n") {
						n := 0
						fmt.Sscanf(l[strings.LastIndexByte(l, '{'):], "{%d+}", &n)
						buf := make([]byte, n)
						io.ReadFull(br, buf)
						cmd.Write(buf)
						continue
					}
					break
				}
				got <- cmd.String()
				c.Write([]byte("L OK [CAPABILITY IMAP4rev1 IDLE] in\r\n"))
				br.ReadString('\n')
			}(c)
		}
	}()
	p := startProxy(t, memBackends(ln.Addr().String()))
	for _, tc := range []struct{ user, pass, want string }{
		{"alice", `pa"ss\w`, "L LOGIN \"alice\" \"pa\\\"ss\\\\w\"\r\n"},
		{"bob", "new\nline", "L LOGIN \"bob\" {8+}\r\nnew\nline\r\n"},
		{"jörg", "x", "L LOGIN {5+}\r\njörg \"x\"\r\n"},
	} {
		c := p.dial(t, "imaps")
		c.expect("* OK")
		c.send(fmt.Sprintf("a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n", len(tc.user), tc.user, len(tc.pass), tc.pass))
		c.expect("a OK [CAPABILITY IMAP4rev1 IDLE]")
		if g := <-got; g != tc.want {
			t.Errorf("backend got %q, want %q", g, tc.want)
		}
	}
}

// writeProbe records, at each write, what the tracker knew then.
type writeProbe struct {
	tr       *imapwire.Tracker
	pending  []int
	selected []string
}

func (w *writeProbe) Write(p []byte) (int, error) {
	w.pending = append(w.pending, w.tr.Pending())
	w.selected = append(w.selected, w.tr.Selected())
	return len(p), nil
}

// TestForwardOrder: a response the client's next command does not depend
// on is written before the framer follows it (off the round trip); one it
// may depend on (here the answer to SELECT) is followed first, so the
// client's next command is read in the new state.
func TestForwardOrder(t *testing.T) {
	var tr imapwire.Tracker
	probe := &writeProbe{tr: &tr}
	cw := clientWriter{out: probe}
	cw.framer.T = &tr
	cf := imapwire.ClientFramer{T: &tr}
	client := func(s string) {
		for p := []byte(s); len(p) > 0; {
			n, _ := cf.Next(p)
			p = p[n:]
		}
	}
	client("n NOOP\r\n")
	cw.forward([]byte("n OK NOOP completed (0.001 + 0.000 secs).\r\n"))
	client("s SELECT INBOX\r\n")
	cw.forward([]byte("* 2 EXISTS\r\ns OK [READ-WRITE] done\r\n"))
	client("a APPEND INBOX {3}\r\n")
	cw.forward([]byte("+ go\r\n"))
	if tr.Lost() || tr.Pending() != 1 {
		t.Fatalf("lost %v, pending %d", tr.Lost(), tr.Pending())
	}
	if want := []int{1, 0, 1}; !slices.Equal(probe.pending, want) {
		t.Errorf("commands in flight at each write %v, want %v (NOOP's answer written first, SELECT's followed first)", probe.pending, want)
	}
	if want := []string{"", "INBOX", "INBOX"}; !slices.Equal(probe.selected, want) {
		t.Errorf("selected at each write %q, want %q", probe.selected, want)
	}
}

// TestBothDirectionsFull: the backend writes a large answer before it
// reads on, while the client keeps sending long command lines and reading
// answers. The client copier's writes then wait for the backend, whose
// writes wait for the backend copier: nothing the backend copier waits
// for (parseMu) may be held across such a write.
func TestBothDirectionsFull(t *testing.T) {
	const lines, lineLen = 16000, 512 // whole lines per read: the fast path
	const answer = 16 << 20
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, _ := br.ReadString('\n') // b BIG
		tag, _, _ := strings.Cut(l, " ")
		junk := "* OK " + strings.Repeat("x", 1019) + "\r\n"
		w := bufio.NewWriterSize(c, 64<<10)
		for n := 0; n < answer; n += len(junk) {
			w.WriteString(junk)
		}
		w.WriteString(tag + " OK big\r\n")
		w.Flush()
		answerOK(c, br, "done")
	})
	p := startProxy(t, fakeBackends(fb), plainLogin)
	c := loginFakePlain(t, p)
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	sent := make(chan error, 1)
	go func() {
		line := []byte("n NOOP " + strings.Repeat("y", lineLen-9) + "\r\n")
		_, err := c.conn.Write([]byte("b BIG\r\n"))
		for i := 0; i < lines && err == nil; i++ {
			_, err = c.conn.Write(line)
		}
		sent <- err
	}()
	br := bufio.NewReaderSize(c.conn, 64<<10)
	oks := 0
	for oks < lines {
		l, err := br.ReadSlice('\n')
		if err != nil {
			t.Fatalf("after %d answers: %v", oks, err)
		}
		if strings.HasPrefix(string(l), "n OK") {
			oks++
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if sp := onlySplice(t, p); sp.tracker.Lost() {
		t.Error("inspection lost")
	}
}

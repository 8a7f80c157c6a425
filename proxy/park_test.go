package proxy

import (
	"bufio"
	"compress/flate"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imapedge/imapedge/policy"
)

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// copierGoroutines counts the goroutines running a splice direction.
func copierGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "proxy.(*splice).run(")
}

func parkedDirections(p *testProxy) int { return p.srv.ParkedCopiers() }

// idleBackend answers IDLE with a continuation, then runs during (with
// the IDLE tag), then answers DONE and NOOPs until the client leaves.
func idleBackend(t *testing.T, during func(c net.Conn, br *bufio.Reader, tag string)) *fakeBackend {
	return startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasSuffix(l, " IDLE\r\n") {
			return
		}
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte("+ idling\r\n"))
		if during != nil {
			during(c, br, tag)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch l = strings.TrimRight(l, "\r\n"); {
			case l == "DONE":
				c.Write([]byte(tag + " OK Idle completed.\r\n"))
			default:
				ntag, _, _ := strings.Cut(l, " ")
				c.Write([]byte(ntag + " OK done\r\n"))
			}
		}
	})
}

func plainLogin(o *Options) {
	n, err := policy.ParseNetworks([]string{"127.0.0.0/8"})
	if err != nil {
		panic(err)
	}
	o.Policy.PlaintextAuthNetworks = n
}

func loginFakePlain(t *testing.T, p *testProxy) *rawClient {
	t.Helper()
	c := p.dial(t, "plain")
	runTranscript(t, c, []step{expect("* OK"), send("a LOGIN u pw\r\n"), expect("a OK")})
	return c
}

// A session in IDLE parks both directions: no goroutine is left running
// for it, and it carries on when either side speaks.
func TestParkedIdleSession(t *testing.T) {
	for _, listener := range []string{"plain", "imaps"} {
		t.Run(listener, func(t *testing.T) {
			push := make(chan string)
			fb := idleBackend(t, func(c net.Conn, br *bufio.Reader, tag string) {
				for l := range push {
					c.Write([]byte(l))
				}
			})
			core, audit := observer.New(zap.InfoLevel)
			p := startProxy(t, fakeBackends(fb), plainLogin, func(o *Options) { o.Audit = zap.New(core) })
			if p.srv.poller == nil {
				t.Skip("no poller on this platform")
			}
			var c *rawClient
			if listener == "plain" {
				c = loginFakePlain(t, p)
			} else {
				c = loginFake(t, p)
			}
			waitFor(t, "two copier goroutines", func() bool { return copierGoroutines() == 2 })
			runTranscript(t, c, []step{send("i IDLE\r\n"), expect("+ idling")})
			waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
			waitFor(t, "no copier goroutine", func() bool { return copierGoroutines() == 0 })
			// Backend speaks: the server direction wakes, forwards, parks again.
			for i := 1; i <= 3; i++ {
				push <- "* " + string(rune('0'+i)) + " EXISTS\r\n"
				c.expect("* " + string(rune('0'+i)) + " EXISTS")
				waitFor(t, "parked again", func() bool { return parkedDirections(p) == 2 })
			}
			// A response split across two writes while parked.
			push <- "* 4 FETCH (FLAGS"
			time.Sleep(20 * time.Millisecond)
			push <- " (\\Seen))\r\n"
			c.expect(`* 4 FETCH (FLAGS (\Seen))`)
			// DONE split in two: the client direction wakes for each part.
			close(push)
			c.send("DO")
			time.Sleep(20 * time.Millisecond)
			c.send("NE\r\n")
			runTranscript(t, c, []step{expect("i OK Idle completed."), send("n NOOP\r\n"), expect("n OK done")})
			waitFor(t, "nothing parked after IDLE", func() bool { return parkedDirections(p) == 0 })
			runTranscript(t, c, []step{send("n2 NOOP\r\n"), expect("n2 OK done")})
			waitFor(t, "the IDLE command event", func() bool {
				return audit.FilterMessage("command").FilterField(zap.String("command", "IDLE")).FilterField(zap.String("status", "OK")).Len() == 1
			})
		})
	}
}

func TestParkedSessionEnds(t *testing.T) {
	cases := []struct {
		name   string
		during func(c net.Conn, br *bufio.Reader, tag string)
		opts   func(*Options)
		client func(t *testing.T, c *rawClient, p *testProxy)
		reason string
	}{
		{
			name: "backend closes",
			during: func(c net.Conn, br *bufio.Reader, tag string) {
				time.Sleep(300 * time.Millisecond)
				c.Close()
			},
			client: func(t *testing.T, c *rawClient, p *testProxy) {
				runTranscript(t, c, []step{expect("* BYE [UNAVAILABLE]"), closed})
			},
			reason: "backend_lost",
		},
		{
			name: "client closes",
			client: func(t *testing.T, c *rawClient, p *testProxy) {
				c.conn.Close()
			},
			reason: "client_eof",
		},
		{
			name: "idle timeout",
			opts: func(o *Options) { o.Policy.IdleTimeout = 1500 * time.Millisecond },
			client: func(t *testing.T, c *rawClient, p *testProxy) {
				runTranscript(t, c, []step{expect("* BYE Autologout"), closed})
			},
			reason: "idle_timeout",
		},
		{
			name: "server closes",
			client: func(t *testing.T, c *rawClient, p *testProxy) {
				p.srv.Close()
				// A BYE if the backend direction got there first, then EOF.
				for {
					l, err := c.br.ReadString('\n')
					if err != nil {
						break
					}
					if !strings.HasPrefix(l, "* BYE [UNAVAILABLE] Server shutting down") {
						t.Fatalf("got %q, want a BYE or EOF", l)
					}
				}
			},
			reason: "shutdown",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fb := idleBackend(t, tc.during)
			opts := []proxyOpt{plainLogin}
			if tc.opts != nil {
				opts = append(opts, tc.opts)
			}
			p := startProxy(t, fakeBackends(fb), opts...)
			if p.srv.poller == nil {
				t.Skip("no poller on this platform")
			}
			c := loginFakePlain(t, p)
			runTranscript(t, c, []step{send("i IDLE\r\n"), expect("+ idling")})
			waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
			tc.client(t, c, p)
			waitLog(t, p, "session_end", "reason", tc.reason)
			waitFor(t, "session gone", func() bool { return p.srv.Sessions() == 0 })
		})
	}
}

// quietBackend answers every command OK; "s SLOW" after a while.
func quietBackend(t *testing.T) *fakeBackend {
	return startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
			if rest == "SLOW" {
				time.Sleep(400 * time.Millisecond)
			}
			c.Write([]byte("* 1 EXISTS\r\n" + tag + " OK " + rest + " done\r\n"))
		}
	})
}

func quickQuiet(o *Options) { o.QuietPark = 20 * time.Millisecond }

// Sessions quiet between commands park as well, and wake for the next
// command; a command in flight keeps them awake.
func TestQuietSessionParks(t *testing.T) {
	for _, listener := range []string{"plain", "imaps"} {
		t.Run(listener, func(t *testing.T) {
			p := startProxy(t, fakeBackends(quietBackend(t)), plainLogin, quickQuiet)
			if p.srv.poller == nil {
				t.Skip("no poller on this platform")
			}
			var c *rawClient
			if listener == "plain" {
				c = loginFakePlain(t, p)
			} else {
				c = loginFake(t, p)
			}
			for i := 0; i < 3; i++ {
				waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
				runTranscript(t, c, []step{send("n NOOP\r\n"), expect("* 1 EXISTS"), expect("n OK NOOP done")})
			}
			waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
			// A command in flight: the backend direction stays parked until
			// the answer comes; the client direction is not nudged again.
			c.send("s SLOW\r\n")
			sp := onlySession(t, p).sp.Load()
			clientParked := func() bool {
				sp.parkMu.Lock()
				defer sp.parkMu.Unlock()
				return sp.park[dirClient].parked
			}
			waitFor(t, "the client direction woken by the command", func() bool { return !clientParked() })
			time.Sleep(200 * time.Millisecond) // many quiet intervals
			if clientParked() || sp.tracker.Pending() != 1 {
				t.Errorf("client direction parked with a command in flight (pending %d)", sp.tracker.Pending())
			}
			runTranscript(t, c, []step{expect("* 1 EXISTS"), expect("s OK SLOW done")})
			// Pipelined commands split across writes while parked.
			waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
			c.send("a NOOP\r\nb NO")
			time.Sleep(50 * time.Millisecond)
			c.send("OP\r\n")
			runTranscript(t, c, []step{expect("* 1 EXISTS"), expect("a OK"), expect("* 1 EXISTS"), expect("b OK NOOP done")})
			runTranscript(t, c, []step{send("z LOGOUT\r\n"), expect("* 1 EXISTS"), expect("z OK LOGOUT done")})
		})
	}
}

func TestQuietParkedIdleTimeout(t *testing.T) {
	p := startProxy(t, fakeBackends(quietBackend(t)), plainLogin, quickQuiet,
		func(o *Options) { o.Policy.IdleTimeout = 1500 * time.Millisecond })
	if p.srv.poller == nil {
		t.Skip("no poller on this platform")
	}
	c := loginFakePlain(t, p)
	waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
	runTranscript(t, c, []step{expect("* BYE Autologout"), closed})
	waitLog(t, p, "session_end", "reason", "idle_timeout")
}

// The compressed client leg is never nudged (a timeout would break the
// DEFLATE stream); the backend direction still parks.
func TestQuietCompressedSession(t *testing.T) {
	p := startProxy(t, fakeBackends(quietBackend(t)), plainLogin, quickQuiet)
	if p.srv.poller == nil {
		t.Skip("no poller on this platform")
	}
	c := loginFake(t, p)
	runTranscript(t, c, []step{send("z COMPRESS DEFLATE\r\n"), expect("z OK")})
	fw, _ := flate.NewWriter(c.conn, flate.BestSpeed)
	zr := bufio.NewReader(flate.NewReader(c.conn))
	zc := &rawClient{t: t, conn: flateConn{Conn: c.conn, w: fw}, br: zr}
	for i := 0; i < 3; i++ {
		waitFor(t, "the backend direction parked", func() bool { return parkedDirections(p) == 1 })
		time.Sleep(60 * time.Millisecond) // a few quiet intervals: the client leg stays awake
		if n := parkedDirections(p); n != 1 {
			t.Fatalf("%d directions parked, want 1", n)
		}
		runTranscript(t, zc, []step{send("n NOOP\r\n"), expect("* 1 EXISTS"), expect("n OK NOOP done")})
	}
}

// flateConn writes through a DEFLATE compressor, flushing every write.
type flateConn struct {
	net.Conn
	w *flate.Writer
}

func (f flateConn) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// Without a poller (epoll unavailable) an IDLE session's copiers wait in
// their reads as before; they must not spin on reads that give up.
func TestNoPollerCopiersWait(t *testing.T) {
	p := startProxy(t, fakeBackends(idleBackend(t, nil)), plainLogin)
	p.srv.mu.Lock()
	pl := p.srv.poller
	p.srv.poller = nil
	p.srv.mu.Unlock()
	if pl != nil {
		pl.close()
	}
	c := loginFakePlain(t, p)
	runTranscript(t, c, []step{send("i IDLE\r\n"), expect("+ idling")})
	waitFor(t, "both copiers waiting in their reads", func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		waiting := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "proxy.(*splice).run(") && strings.Contains(g, "[IO wait") {
				waiting++
			}
		}
		return waiting == 2
	})
	runTranscript(t, c, []step{send("DONE\r\n"), expect("i OK"), send("n NOOP\r\n"), expect("n OK")})
}

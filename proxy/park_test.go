package proxy

import (
	"bufio"
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

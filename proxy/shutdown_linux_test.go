package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapedge/imapedge/routing"
)

// unreachable returns a loopback address whose connects hang: a listening
// socket with a backlog of 0 that never accepts, its queue filled first.
// Linux drops SYNs to a listener whose accept queue is full, so a connect
// waits for SYN retransmits (1 s, 3 s, ...) until its caller gives up.
func unreachable(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue; a fill attempt that hangs is the sign it is full.
	for range 3 {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

// TestCloseEndsBackendDial: a server shut down while a login waits for a
// backend connect does not wait for the connect timeout, and the session
// does not survive it: the failed login used to set a fresh pre-auth
// deadline over the one abort had put in the past, and Close waited for
// the client's next command (up to the pre-auth timeout).
func TestCloseEndsBackendDial(t *testing.T) {
	addr := unreachable(t)
	p := startProxy(t, []*routing.Backend{{Name: "hang", Address: addr, TLS: routing.TLSNone, Pool: "default", Weight: 1,
		ConnectTimeout: time.Minute, LoginTimeout: 2 * time.Minute}}, plainLogin)
	c := p.dial(t, "plain")
	runTranscript(t, c, []step{expect("* OK"), send("a LOGIN u pw\r\n")})
	waitFor(t, "the login to wait for the connect", func() bool { return pendingConnects(p) == 1 })
	closed := make(chan struct{})
	go func() {
		p.srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close waited for the backend connect (timeout one minute)")
	}
}

// pendingConnects counts the backend connects under way.
func pendingConnects(p *testProxy) int {
	w := &p.srv.connects
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// TestConnectTimeout: a backend whose connect hangs is given up after its
// connect timeout, reported as a timeout, and the login goes on to the
// next backend. Backends given as IP:port are bounded by the server's
// connect watch (no context deadline), backends given by name by a
// context deadline that bounds the name lookup too.
func TestConnectTimeout(t *testing.T) {
	for _, byName := range []bool{false, true} {
		t.Run(fmt.Sprintf("by name %v", byName), func(t *testing.T) {
			addr := unreachable(t)
			if byName {
				addr = strings.Replace(addr, "127.0.0.1", "localhost", 1)
			}
			good := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) { br.ReadString('\n') })
			bs := []*routing.Backend{
				{Name: "hang", Address: addr, TLS: routing.TLSNone, Pool: "default", Weight: 1,
					ConnectTimeout: 300 * time.Millisecond, LoginTimeout: time.Minute},
				{Name: "good", Address: good.ln.Addr().String(), TLS: routing.TLSNone, Pool: "default", Weight: 1,
					ConnectTimeout: time.Second, LoginTimeout: time.Minute},
			}
			p := startProxy(t, bs, plainLogin)
			user := ""
			for i := 0; ; i++ { // a user whose first candidate is the hanging backend
				user = fmt.Sprintf("user%d", i)
				if cands, _ := p.srv.opts.Routes.Resolve(user); cands[0].Name == "hang" {
					break
				}
			}
			c := p.dial(t, "plain")
			c.conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a connect that is never cut short: SYN retries for minutes
			runTranscript(t, c, []step{expect("* OK"), send("a LOGIN " + user + " pw\r\n"), expect("a OK")})
			waitLog(t, p, "backend unreachable", "backend", "hang")
			e := p.logs.FilterMessage("backend unreachable").All()[0]
			// (By name, localhost may also resolve to ::1, which refuses at
			// once; the dial then reports that first error.)
			if err := fmt.Sprint(e.ContextMap()["error"]); !byName && !strings.Contains(err, "i/o timeout") {
				t.Errorf("backend unreachable: error %q, want an i/o timeout", err)
			}
			if n := pendingConnects(p); n != 0 {
				t.Errorf("%d connects still registered", n)
			}
		})
	}
}

package proxy

import (
	"net"
	"strconv"
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
	// Let the login reach the dial; if it has not yet, Close ends it all
	// the same (this only makes the test exercise the dial most times).
	time.Sleep(100 * time.Millisecond)
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

package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// sockPair returns a sockConn dialled by dialSock and the peer a
// sockListener accepted, and checks both ends' addresses.
func sockPair(t *testing.T, network, addr string) (dialled, accepted net.Conn) {
	t.Helper()
	lc := listenConfig()
	tl, err := lc.Listen(t.Context(), network, addr)
	if err != nil {
		t.Skipf("no %s listener: %v", network, err)
	}
	ln := newSockListener(tl)
	t.Cleanup(func() { ln.Close() })
	ap := tl.Addr().(*net.TCPAddr).AddrPort()
	var w connectWatch
	d, err := dialSock(ap, &w, time.Now().Add(5*time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, ok := a.(*sockConn); !ok {
		t.Fatalf("accepted a %T", a)
	}
	if got := d.RemoteAddr().String(); got != tl.Addr().String() {
		t.Errorf("dialled RemoteAddr %s, want %s", got, tl.Addr())
	}
	if got, want := a.RemoteAddr().String(), d.LocalAddr().String(); got != want {
		t.Errorf("accepted RemoteAddr %s, dialled LocalAddr %s", got, want)
	}
	if got, want := a.LocalAddr().String(), tl.Addr().String(); got != want {
		t.Errorf("accepted LocalAddr %s, want %s", got, want)
	}
	if ap, ok := remoteAddrPort(newParkConn(a)); !ok || ap.String() != a.RemoteAddr().String() {
		t.Errorf("remoteAddrPort %v %v, want %s", ap, ok, a.RemoteAddr())
	}
	return d, a
}

func TestSockConnIO(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			d, a := sockPair(t, tc.network, tc.addr)
			if _, err := d.Write([]byte("a NOOP\r\n")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			a.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := a.Read(buf)
			if err != nil || string(buf[:n]) != "a NOOP\r\n" {
				t.Fatalf("read %q, %v", buf[:n], err)
			}
			// A deadline in the past: a timeout, as net reports it.
			a.SetReadDeadline(time.Unix(1, 0))
			if _, err := a.Read(buf); !isTimeout(err) {
				t.Fatalf("read past its deadline: %v, want a timeout", err)
			}
			// Half-close: the peer reads EOF and can still answer.
			if err := d.(*sockConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			a.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := a.Read(buf); err != io.EOF {
				t.Fatalf("read after the peer's CloseWrite: %d, %v, want EOF", n, err)
			}
			if _, err := a.Write([]byte("* BYE\r\n")); err != nil {
				t.Fatal(err)
			}
			d.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := d.Read(buf); err != nil || string(buf[:n]) != "* BYE\r\n" {
				t.Fatalf("read %q, %v", buf[:n], err)
			}
			// Closed: net.ErrClosed, as net reports it.
			a.Close()
			if _, err := a.Read(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read after Close: %v, want net.ErrClosed", err)
			}
			if _, err := a.Write(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

// SetLinger(0) makes Close reset the connection; the peer sees it.
func TestSockConnLinger(t *testing.T) {
	d, a := sockPair(t, "tcp4", "127.0.0.1:0")
	if err := a.(*sockConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	a.Close()
	d.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := d.Read(make([]byte, 8))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the peer's abortive close: %v, want ECONNRESET", err)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "read" {
		t.Errorf("error %v does not name the read", err)
	}
}

func TestSockDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	var w connectWatch
	_, err = dialSock(ap, &w, time.Now().Add(5*time.Second), false)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED", err)
	}
	if want := "dial tcp " + ap.String() + ": connect: connection refused"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// A closed sockListener ends a waiting Accept with net.ErrClosed (the
// accept loop's signal to stop).
func TestSockListenerClose(t *testing.T) {
	lc := listenConfig()
	tl, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newSockListener(tl)
	errc := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ln.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
	// The port is free again: nothing holds the listening socket.
	ln2, err := net.Listen("tcp", tl.Addr().String())
	if err != nil {
		t.Fatalf("listening again on the closed listener's port: %v", err)
	}
	ln2.Close()
}

func TestSockaddrAddrPort(t *testing.T) {
	for _, tc := range []struct {
		sa   syscall.Sockaddr
		want string
		ok   bool
	}{
		{&syscall.SockaddrInet4{Port: 993, Addr: [4]byte{192, 0, 2, 1}}, "192.0.2.1:993", true},
		{&syscall.SockaddrInet6{Port: 143, Addr: netip.MustParseAddr("2001:db8::1").As16()}, "[2001:db8::1]:143", true},
		{&syscall.SockaddrUnix{Name: "/x"}, "invalid AddrPort", false},
		{nil, "invalid AddrPort", false},
	} {
		ap, ok := sockaddrAddrPort(tc.sa)
		if ap.String() != tc.want || ok != tc.ok {
			t.Errorf("sockaddrAddrPort(%v) = %s, %v; want %s, %v", tc.sa, ap, ok, tc.want, tc.ok)
		}
	}
}

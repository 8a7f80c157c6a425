package proxy

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// Accepted connections must have keep-alive with imapedge's settings and
// TCP_NODELAY, inherited from the listening socket: sockListener sets
// neither itself.
func TestAcceptedSocketOptions(t *testing.T) {
	lc := listenConfig()
	tl, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newSockListener(tl)
	if _, ok := ln.(*sockListener); !ok {
		t.Fatalf("listener is a %T, not a sockListener", ln)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	checkKeepAlive(t, a.(*sockConn), true)
}

// checkKeepAlive checks c's keep-alive options (imapedge's settings, or
// none) and TCP_NODELAY.
func checkKeepAlive(t *testing.T, c syscall.Conn, on bool) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name       string
		level, opt int
		val        int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAlive.Idle.Seconds())},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAlive.Interval.Seconds())},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAlive.Count},
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	if !on {
		want = append(want[:0], want[0], want[4])
		want[0].val = 0
	}
	rc.Control(func(fd uintptr) {
		for _, w := range want {
			got, err := syscall.GetsockoptInt(int(fd), w.level, w.opt)
			if err != nil {
				t.Errorf("%s: %v", w.name, err)
				continue
			}
			if (w.opt == syscall.SO_KEEPALIVE || w.opt == syscall.TCP_NODELAY) && got != 0 {
				got = 1
			}
			if got != w.val {
				t.Errorf("%s = %d, want %d", w.name, got, w.val)
			}
		}
	})
}

// The backend leg gets keep-alive when its session parks, not at login.
func TestBackendKeepAliveWhenParked(t *testing.T) {
	p := startProxy(t, fakeBackends(idleBackend(t, nil)), plainLogin)
	c := loginFakePlain(t, p)
	sp := onlySplice(t, p)
	back := sp.park[dirBackend].pc
	checkKeepAlive(t, back, false)
	runTranscript(t, c, []step{send("i IDLE\r\n"), expect("+ idling")})
	waitFor(t, "both directions parked", func() bool { return parkedDirections(p) == 2 })
	checkKeepAlive(t, back, true)
	runTranscript(t, c, []step{send("DONE\r\n"), expect("i OK")})
}

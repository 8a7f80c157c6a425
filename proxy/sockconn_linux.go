package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// haveSockConn: imapedge accepts and connects its own sockets.
const haveSockConn = true

// Sockets imapedge accepts and connects itself.
//
// net spends system calls and allocations on every connection that a
// proxy has no use for. On accept: TCP_NODELAY (the accepted socket
// inherits the listening socket's, see listenConfig) and getsockname. On
// connect to an IP address: the resolver and dial machinery, a pass
// through the scheduler while the connect completes (on loopback it has
// completed when connect(2) returns), then SO_ERROR, getpeername and
// getsockname. A sockConn is an *os.File on the non-blocking socket
// instead: the runtime's poller serves it exactly as it serves net's
// connections (reads and writes wait in the poller, deadlines work), and
// sockConn does the few socket operations imapedge needs (half-close,
// linger, keep-alive) itself.
type sockConn struct {
	f      *os.File
	rc     syscall.RawConn // f's
	remote netip.AddrPort
	raddr  atomic.Pointer[net.TCPAddr] // remote's, made when first asked for
	closed atomic.Bool
}

// newSockConn takes over fd, a connected non-blocking TCP socket.
func newSockConn(fd int, remote netip.AddrPort) (*sockConn, error) {
	f := os.NewFile(uintptr(fd), "tcp") // registers fd with the poller
	if f == nil {
		syscall.Close(fd)
		return nil, errors.New("invalid socket")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &sockConn{f: f, rc: rc, remote: remote}, nil
}

func (c *sockConn) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

func (c *sockConn) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	if err != nil {
		err = c.opError("write", err)
	}
	return n, err
}

func (c *sockConn) Close() error {
	c.closed.Store(true)
	if err := c.f.Close(); err != nil {
		return c.opError("close", err)
	}
	return nil
}

func (c *sockConn) LocalAddr() net.Addr {
	var sa syscall.Sockaddr
	c.rc.Control(func(fd uintptr) { sa, _ = syscall.Getsockname(int(fd)) })
	if ap, ok := sockaddrAddrPort(sa); ok {
		return net.TCPAddrFromAddrPort(ap)
	}
	return nil
}

func (c *sockConn) RemoteAddr() net.Addr { return c.remoteTCPAddr() }

func (c *sockConn) remoteTCPAddr() *net.TCPAddr {
	if a := c.raddr.Load(); a != nil {
		return a
	}
	a := net.TCPAddrFromAddrPort(c.remote)
	c.raddr.Store(a)
	return a
}

// remoteAddrPort is RemoteAddr without an allocation.
func (c *sockConn) remoteAddrPort() netip.AddrPort { return c.remote }

func (c *sockConn) SetDeadline(t time.Time) error { return c.opError("set", c.f.SetDeadline(t)) }
func (c *sockConn) SetReadDeadline(t time.Time) error {
	return c.opError("set", c.f.SetReadDeadline(t))
}
func (c *sockConn) SetWriteDeadline(t time.Time) error {
	return c.opError("set", c.f.SetWriteDeadline(t))
}

// SyscallConn returns the socket's raw connection; its errors read like
// net's.
func (c *sockConn) SyscallConn() (syscall.RawConn, error) { return sockRaw{c}, nil }

// CloseWrite shuts down the sending side (a FIN).
func (c *sockConn) CloseWrite() error {
	return c.control("shutdown", func(fd int) error { return syscall.Shutdown(fd, syscall.SHUT_WR) })
}

// SetLinger is net.TCPConn.SetLinger.
func (c *sockConn) SetLinger(sec int) error {
	l := syscall.Linger{Onoff: 1, Linger: int32(sec)}
	if sec < 0 {
		l = syscall.Linger{}
	}
	return c.control("setsockopt", func(fd int) error {
		return syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &l)
	})
}

// SetKeepAliveConfig is net.TCPConn.SetKeepAliveConfig for a config with
// every field set (imapedge's keepAlive).
func (c *sockConn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	return c.control("setsockopt", func(fd int) error { return setKeepAlive(fd, cfg) })
}

func setKeepAlive(fd int, cfg net.KeepAliveConfig) error {
	if !cfg.Enable {
		return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0)
	}
	for _, o := range [...]struct{ level, opt, val int }{
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(cfg.Idle / time.Second)},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(cfg.Interval / time.Second)},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, cfg.Count},
	} {
		if err := syscall.SetsockoptInt(fd, o.level, o.opt, o.val); err != nil {
			return err
		}
	}
	return nil
}

// control runs f on the socket, which stays open meanwhile.
func (c *sockConn) control(call string, f func(fd int) error) error {
	var ferr error
	if err := c.rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return c.opError("raw-control", err)
	}
	if ferr != nil {
		return c.opError(call, ferr)
	}
	return nil
}

// opError turns an error of the *os.File into what net reports: a
// *net.OpError with net.ErrClosed for a closed connection and the system
// call's name on system errors.
func (c *sockConn) opError(op string, err error) error {
	if err == nil {
		return nil
	}
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		err = os.NewSyscallError(op, errno)
	case err == os.ErrClosed || c.closed.Load() && !errors.Is(err, os.ErrDeadlineExceeded):
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.remoteTCPAddr(), Err: err}
}

// sockRaw is a sockConn's syscall.RawConn.
type sockRaw struct{ c *sockConn }

func (r sockRaw) Control(f func(fd uintptr)) error {
	return r.err("raw-control", r.c.rc.Control(f))
}

func (r sockRaw) Read(f func(fd uintptr) bool) error { return r.err("raw-read", r.c.rc.Read(f)) }

func (r sockRaw) Write(f func(fd uintptr) bool) error {
	return r.err("raw-write", r.c.rc.Write(f))
}

func (r sockRaw) err(op string, err error) error {
	if err == nil {
		return nil
	}
	return r.c.opError(op, err)
}

// sockListener accepts sockConns. net's listener does not let its socket
// be read through SyscallConn, so the listener accepts on a duplicate of
// it, an *os.File that waits in the poller as net's does.
type sockListener struct {
	*net.TCPListener
	f      *os.File // the duplicate
	rc     syscall.RawConn
	closed atomic.Bool

	// accept4's results; only the accept loop calls Accept.
	acceptFn func(fd uintptr) bool
	nfd      int
	sa       syscall.Sockaddr
	err      error
}

// newSockListener wraps a TCP listener; any other is returned as is.
func newSockListener(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	f, err := tl.File()
	if err != nil {
		return ln
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return ln
	}
	l := &sockListener{TCPListener: tl, f: f, rc: rc}
	l.acceptFn = l.accept4
	return l
}

// Accept waits for the next connection. Once the listener is closed it
// returns an error that is net.ErrClosed.
func (l *sockListener) Accept() (net.Conn, error) {
	l.nfd, l.sa, l.err = -1, nil, nil
	if err := l.rc.Read(l.acceptFn); err != nil {
		if l.closed.Load() {
			err = net.ErrClosed
		}
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
	}
	sa := l.sa
	l.sa = nil
	if l.err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", l.err)}
	}
	ap, _ := sockaddrAddrPort(sa)
	return newSockConn(l.nfd, ap)
}

// Close closes both descriptors of the listening socket; a waiting Accept
// returns.
func (l *sockListener) Close() error {
	l.closed.Store(true)
	l.f.Close()
	return l.TCPListener.Close()
}

func (l *sockListener) accept4(fd uintptr) bool {
	for {
		nfd, sa, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch err {
		case nil:
			l.nfd, l.sa = nfd, sa
			return true
		case syscall.EINTR, syscall.ECONNABORTED:
			continue // as net does: the next one
		case syscall.EAGAIN:
			return false // wait in the poller
		}
		l.err = err
		return true
	}
}

func sockaddrAddrPort(sa syscall.Sockaddr) (netip.AddrPort, bool) {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *syscall.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a = a.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(a, uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// dialSock connects to ap, an address without a zone. On loopback the
// connect has completed when connect(2) returns, and a second connect(2)
// says so. A connect still under way then waits in the poller, bounded by
// w (its deadline, or the server stopping).
func dialSock(ap netip.AddrPort, w *connectWatch, deadline time.Time, keepAliveNow bool) (net.Conn, error) {
	addr := ap.Addr().Unmap()
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if addr.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: addr.As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: addr.As16()}
	}
	ap = netip.AddrPortFrom(addr, ap.Port())
	dialErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	fail := func(call string, err error) error { return dialErr(os.NewSyscallError(call, err)) }
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fail("socket", err)
	}
	// As net does: small writes (a command line) go out at once.
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		syscall.Close(fd)
		return nil, fail("setsockopt", err)
	}
	if keepAliveNow {
		if err := setKeepAlive(fd, keepAlive); err != nil {
			syscall.Close(fd)
			return nil, fail("setsockopt", err)
		}
	}
	err = syscall.Connect(fd, sa)
	if err == syscall.EINPROGRESS || err == syscall.EINTR {
		// Linux: a second connect reports the outcome, or EALREADY.
		err = syscall.Connect(fd, sa)
	}
	switch err {
	case nil, syscall.EISCONN:
		return newSockConn(fd, ap)
	case syscall.EALREADY, syscall.EINPROGRESS, syscall.EINTR:
	default:
		syscall.Close(fd)
		return nil, fail("connect", err)
	}
	c, err := newSockConn(fd, ap)
	if err != nil {
		return nil, err
	}
	pc := &pendingConnect{deadline: deadline.UnixNano()}
	if err := w.control(pc, c.rc); err != nil {
		c.Close()
		return nil, dialErr(err)
	}
	// Not connect again: on a socket the watch shut down, that would
	// start a new connect. SO_ERROR and getpeername tell, as in net.
	// RawConn.Write forgets a readiness the poller saw before it, so the
	// first look must come before any wait.
	var cerr error
	werr := c.rc.Write(func(fd uintptr) bool {
		e, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err != nil {
			cerr = err
			return true
		}
		switch e := syscall.Errno(e); e {
		case syscall.EINPROGRESS, syscall.EALREADY, syscall.EINTR:
			return false // wait until writable
		case syscall.EISCONN:
		case 0:
			if _, err := syscall.Getpeername(int(fd)); err != nil {
				return false // not connected yet (or a spurious wake-up)
			}
		default:
			cerr = e
		}
		return true
	})
	if cause := w.done(pc); cause != nil {
		c.Close()
		return nil, dialErr(cause)
	}
	switch {
	case werr != nil:
		c.Close()
		return nil, dialErr(werr)
	case cerr != nil:
		c.Close()
		return nil, fail("connect", cerr)
	}
	return c, nil
}

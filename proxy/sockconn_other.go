//go:build !linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// haveSockConn: imapedge accepts and connects its own sockets (Linux,
// sockconn_linux.go); elsewhere net does.
const haveSockConn = false

func newSockListener(ln net.Listener) net.Listener { return ln }

func dialSock(netip.AddrPort, *connectWatch, time.Time, bool) (net.Conn, error) {
	return nil, errors.New("not on this system")
}

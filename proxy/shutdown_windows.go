//go:build windows

package proxy

import "syscall"

// shutdownSocket shuts down both directions of rc's socket; a connect
// under way fails at once. Nothing happens once the socket is closed.
func shutdownSocket(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) { syscall.Shutdown(syscall.Handle(fd), syscall.SHUT_RDWR) })
}

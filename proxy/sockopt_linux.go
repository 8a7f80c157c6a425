package proxy

import (
	"net"
	"syscall"
)

// listenConfig sets keep-alive and TCP_NODELAY once on the listening
// socket. Linux copies these options to every accepted socket, so accepted
// connections need no setsockopt calls of their own: that saves five
// system calls per connection (sockListener does not set TCP_NODELAY the
// way net's Accept does).
func listenConfig() net.ListenConfig {
	return net.ListenConfig{
		KeepAlive: -1, // inherited from the listening socket
		Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				for _, o := range [...]struct{ level, opt, val int }{
					{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAlive.Idle.Seconds())},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAlive.Interval.Seconds())},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAlive.Count},
					{syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
				} {
					if serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.val); serr != nil {
						return
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

//go:build !linux

package proxy

import (
	"errors"
	"net"
	"time"
)

// poller: sessions park only on Linux (epoll); elsewhere copiers block in
// their reads as usual.
type poller struct{ pollerBase }

func newPoller(func(), time.Duration) (*poller, error) { return nil, errors.New("parking needs Linux") }

func (p *poller) add(sp *splice, dir, fd int) *pollSlot { return p.addSlot(sp, dir, fd) }
func (p *poller) arm(*pollSlot) error                   { return errors.New("parking needs Linux") }
func (p *poller) remove(sl *pollSlot)                   { p.removeSlot(sl) }
func (p *poller) close()                                {}

func newParkConn(c net.Conn) net.Conn { return c }

func (c *parkConn) read(uintptr) bool { return true }

// writeNow writes nothing here: the caller writes the usual way.
func (c *parkConn) writeNow([]byte) (int, error) { return 0, nil }

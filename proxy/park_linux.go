package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// newParkConn wraps TCP connections; anything else is returned as is and
// its session never parks.
func newParkConn(c net.Conn) net.Conn {
	if tc, ok := c.(tcpConn); ok {
		return &parkConn{tcpConn: tc, fd: -1}
	}
	return c
}

// read is the raw read: it never waits for the socket.
func (c *parkConn) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), c.p)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.block = true
		case nil:
			c.n = n
		default:
			c.err = err
		}
		return true
	}
}

// writeNow writes as much of p as the socket takes without waiting and
// returns how much that was. Only the client copier writes to a backend
// connection, so the write state needs no lock.
func (c *parkConn) writeNow(p []byte) (int, error) {
	if c.wrc == nil {
		rc, err := c.tcpConn.SyscallConn()
		if err != nil {
			return 0, nil // the caller writes it all the usual way
		}
		c.wrc = rc
		c.writeFn = func(fd uintptr) bool {
			for c.wn < len(c.wp) {
				n, err := syscall.Write(int(fd), c.wp[c.wn:])
				if err == syscall.EINTR {
					continue
				}
				if err != nil {
					if err != syscall.EAGAIN {
						c.werr = err
					}
					break
				}
				c.wn += n
			}
			return true
		}
	}
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.wrc.Write(c.writeFn)
	n, werr := c.wn, c.werr
	c.wp = nil
	if err != nil {
		return n, err
	}
	if werr != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	return n, nil
}

// poller is one epoll instance and the goroutine that waits on it. Slots
// are armed one-shot: an event fires once per park.
type poller struct {
	pollerBase
	epfd  int
	wakeR int // pipe that stops the loop
	wakeW int
	done  chan struct{}
}

// expireEvery is how often parked sessions are checked for idle timeouts.
const expireEvery = time.Second

func newPoller(quiet func(), quietEvery time.Duration) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	// Token 0 is the stop pipe; slots count from 1.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fds[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, err
	}
	p := &poller{epfd: epfd, wakeR: fds[0], wakeW: fds[1], done: make(chan struct{})}
	p.slots = make(map[uint64]*pollSlot)
	p.quiet, p.quietEvery = quiet, quietEvery
	go p.loop()
	return p, nil
}

// add registers fd (not armed yet).
func (p *poller) add(sp *splice, dir, fd int) *pollSlot {
	return p.addSlot(sp, dir, fd)
}

// arm asks for one event when the slot's socket becomes readable (or
// hangs up). If it is readable already, the event comes at once.
func (p *poller) arm(sl *pollSlot) error {
	if sl.fd < 0 {
		return errors.New("no file descriptor")
	}
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(sl.token),
		Pad:    int32(sl.token >> 32),
	}
	err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, sl.fd, &ev)
	if err == syscall.ENOENT {
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, sl.fd, &ev)
	}
	return err
}

// remove forgets the slot; its socket must still be open.
func (p *poller) remove(sl *pollSlot) {
	p.removeSlot(sl)
	if sl.fd >= 0 {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, sl.fd, nil)
	}
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	tokens := make([]uint64, 0, len(events))
	next := time.Now().Add(expireEvery)
	nextQuiet := time.Now().Add(p.quietEvery)
	for {
		if p.quietEvery > 0 && nextQuiet.Before(next) {
			next = nextQuiet
		}
		wait := int(time.Until(next) / time.Millisecond)
		if wait < 0 {
			wait = 0
		}
		n, err := syscall.EpollWait(p.epfd, events, wait+1)
		if err != nil && err != syscall.EINTR {
			return
		}
		tokens = tokens[:0]
		for _, ev := range events[:max(n, 0)] {
			t := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if t == 0 {
				return
			}
			tokens = append(tokens, t)
		}
		if len(tokens) > 0 {
			guard(func() { p.ready(tokens) })
		}
		if now := time.Now(); !now.Before(next) {
			guard(func() { p.expire(now) })
			if p.quietEvery > 0 && !now.Before(nextQuiet) {
				guard(p.quiet)
				nextQuiet = now.Add(p.quietEvery)
			}
			next = now.Add(expireEvery)
		}
	}
}

// close stops the loop and releases the epoll instance. Sessions must
// have ended before.
func (p *poller) close() {
	syscall.Write(p.wakeW, []byte{0})
	<-p.done
	syscall.Close(p.epfd)
	syscall.Close(p.wakeR)
	syscall.Close(p.wakeW)
}

// Package proxy is imapedge's data path: listeners, the pre-authentication
// state machine, the backend login, and the splice that forwards a logged-in
// session while following its framing.
//
// One goroutine serves each connection from accept to close; after login it
// runs two named copier goroutines, copyClientToBackend and
// copyBackendToClient, and waits for both. Every connection goroutine
// recovers panics, so one bad session never takes the process down.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/imapedge/imapedge/policy"
	"github.com/imapedge/imapedge/routing"
	"github.com/imapedge/imapedge/tlsconf"
)

// TLS modes of a listener.
const (
	ListenerImplicit = "implicit"
	ListenerStartTLS = "starttls"
	ListenerNone     = "none"
)

// COMPRESS=DEFLATE handling of a listener.
const (
	CompressTerminate = "terminate" // imapedge answers COMPRESS and compresses the client leg
	CompressStrip     = "strip"     // COMPRESS=DEFLATE is not advertised; COMPRESS gets NO
)

// Listener describes one front socket.
type Listener struct {
	Name     string
	Address  string // host:port; port 0 picks a free one (tests)
	TLS      string // implicit | starttls | none
	Compress string // terminate (default) | strip
}

// Options configure a Server. Zero durations take the documented defaults.
type Options struct {
	Listeners []Listener
	// Certs serves the certificates of TLS listeners; required when a
	// listener uses implicit TLS or STARTTLS.
	Certs            *tlsconf.Store
	HandshakeTimeout time.Duration // default 10s
	Routes           *routing.Table
	Policy           *policy.Policy // default policy.Default()
	Log              *zap.Logger    // default: no logging
	// Audit receives one event per completed command and the
	// session_start/session_end events; nil: no audit events. It must
	// not sample.
	Audit *zap.Logger
	// DisableInspection turns the splice into a plain byte copy: no
	// command events, no response boundaries (a lost backend then closes
	// the client at once), COMPRESS not terminated. For measuring what
	// inspection costs; not for production.
	DisableInspection bool
	// QuietPark is how often logged-in sessions quiet between commands
	// are looked for; one quiet for a whole interval parks (see park.go).
	// 0: 10 s; negative: only sessions in IDLE park.
	QuietPark time.Duration
	// Listen opens a listener; default net.Listen (tests may override).
	Listen func(network, address string) (net.Listener, error)
}

const defaultQuietPark = 10 * time.Second

// keepAlive is set on both legs when the connection is made (on Linux
// accepted connections inherit it from the listening socket): idle IMAP
// sessions behind NAT need it, and a peer that vanished is noticed after
// about 5 + 3×1 minutes.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 5 * time.Minute, Interval: time.Minute, Count: 3}

// Server accepts client connections and proxies them.
type Server struct {
	opts Options
	log  *zap.Logger

	mu        sync.Mutex
	listeners map[string]net.Listener
	conns     map[*session]struct{}
	closed    bool
	wg        sync.WaitGroup

	metrics *metrics
	ready   atomic.Bool
	// poller watches the sockets of parked sessions; nil: sessions do
	// not park.
	poller   *poller
	quietBuf []*splice // parkQuiet's list, reused
	workers  *workers
	connects connectWatch // backend connects under way

	ctx    context.Context
	cancel context.CancelFunc
}

// New checks opts and returns a Server that is not listening yet.
func New(opts Options) (*Server, error) {
	if len(opts.Listeners) == 0 {
		return nil, errors.New("proxy: no listeners")
	}
	if opts.Routes == nil {
		return nil, errors.New("proxy: no routing table")
	}
	for _, l := range opts.Listeners {
		switch l.TLS {
		case ListenerImplicit, ListenerStartTLS:
			if opts.Certs == nil {
				return nil, fmt.Errorf("proxy: listener %q needs TLS certificates", l.Name)
			}
		case ListenerNone:
		default:
			return nil, fmt.Errorf("proxy: listener %q: unknown tls mode %q", l.Name, l.TLS)
		}
		switch l.Compress {
		case "", CompressTerminate, CompressStrip:
		default:
			return nil, fmt.Errorf("proxy: listener %q: unknown compress mode %q", l.Name, l.Compress)
		}
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.Policy == nil {
		opts.Policy = policy.Default()
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Listen == nil {
		lc := listenConfig()
		opts.Listen = func(network, address string) (net.Listener, error) {
			return lc.Listen(context.Background(), network, address)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		workers:   newWorkers(ctx, opts.Log),
		opts:      opts,
		log:       opts.Log,
		listeners: make(map[string]net.Listener),
		conns:     make(map[*session]struct{}),
		metrics:   newMetrics(),
		ctx:       ctx,
		cancel:    cancel,
	}, nil
}

// Start opens every listener and starts accepting. If one listener cannot
// be opened, the ones already opened are closed again.
func (s *Server) Start() error {
	quiet := s.opts.QuietPark
	if quiet == 0 {
		quiet = defaultQuietPark
	}
	if p, err := newPoller(s.parkQuiet, max(quiet, 0)); err == nil {
		s.mu.Lock()
		s.poller = p
		s.mu.Unlock()
		s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "imapedge_copiers_parked",
			Help: "Copier goroutines parked while their session is in IDLE or quiet between commands (two per session).",
		}, func() float64 { return float64(p.parked.Load()) }))
	} else {
		s.log.Warn("idle sessions will not park", zap.Error(err))
	}
	for _, l := range s.opts.Listeners {
		ln, err := s.opts.Listen("tcp", l.Address)
		if err != nil {
			s.Close()
			return fmt.Errorf("proxy: listener %q: %w", l.Name, err)
		}
		ln = newSockListener(ln)
		s.mu.Lock()
		s.listeners[l.Name] = ln
		s.mu.Unlock()
		s.log.Info("listening", zap.String("listener", l.Name), zap.String("address", ln.Addr().String()), zap.String("tls", l.TLS))
		s.wg.Add(1)
		go s.acceptLoop(l, ln)
	}
	for _, b := range s.opts.Routes.Backends() {
		s.metrics.backendUp.WithLabelValues(b.Name).Set(1)
	}
	s.ready.Store(true)
	return nil
}

// Addr returns the bound address of the named listener, or nil.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ln := s.listeners[name]; ln != nil {
		return ln.Addr()
	}
	return nil
}

// Close stops the listeners, ends every session at once and waits for all
// goroutines to finish.
func (s *Server) Close() error {
	s.ready.Store(false)
	s.mu.Lock()
	s.closed = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.abort()
	}
	s.mu.Unlock()
	s.connects.close()
	s.cancel()
	s.wg.Wait()
	s.workers.waitAll()
	s.mu.Lock()
	p := s.poller
	s.poller = nil
	s.mu.Unlock()
	if p != nil {
		p.close()
	}
	return nil
}

// ParkedCopiers returns how many copier goroutines are parked now (two
// per session in IDLE or quiet between commands; see park.go).
func (s *Server) ParkedCopiers() int {
	if p := s.parker(); p != nil {
		return int(p.parked.Load())
	}
	return 0
}

func (s *Server) parker() *poller {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poller
}

// Sessions returns the number of open client connections.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) acceptLoop(l Listener, ln net.Listener) {
	defer s.wg.Done()
	var delay time.Duration
	accepted := s.metrics.connections.WithLabelValues(l.Name)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			s.log.Warn("accept failed", zap.String("listener", l.Name), zap.Error(err))
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		accepted.Inc()
		sess := newSession(s, l, newParkConn(c))
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.workers.run(func() { s.serveConn(sess) })
	}
}

// serveConn runs one connection; it owns the connection and always closes
// it.
// After a successful login the session goroutine becomes the client
// copier and starts the backend copier; the last copier to finish calls
// endSession. Quiet sessions park (park.go): no goroutine, no stack.
func (s *Server) serveConn(sess *session) {
	detached := false
	defer func() {
		if r := recover(); r != nil {
			panicsTotal.Add(1)
			s.log.Error("panic in session", zap.String("session", sess.id), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			sess.setReason(reasonError)
			detached = false
		}
		if !detached {
			s.endSession(sess)
		}
	}()
	detached = sess.serve()
}

// endSession closes the session's connections, logs its end and forgets it.
func (s *Server) endSession(sess *session) {
	defer s.wg.Done()
	sess.close()
	sess.releaseIO()
	s.mu.Lock()
	delete(s.conns, sess)
	s.mu.Unlock()
}

func (s *Server) tlsConfig() *tls.Config { return s.opts.Certs.ServerConfig() }

// SetAudit sets the audit event logger (see Options.Audit); call it before
// Start.
func (s *Server) SetAudit(l *zap.Logger) { s.opts.Audit = l }

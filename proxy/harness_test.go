package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imapedge/imapedge/policy"
	"github.com/imapedge/imapedge/routing"
	"github.com/imapedge/imapedge/tlsconf"
)

// memBackend is a go-imap in-memory IMAP server on a loopback port.
type memBackend struct {
	srv  *imapserver.Server
	ln   net.Listener
	addr string
}

func startMemBackend(t testing.TB, users map[string]string) *memBackend {
	t.Helper()
	mem := imapmemserver.New()
	for u, p := range users {
		usr := imapmemserver.NewUser(u, p)
		usr.Create("INBOX", nil)
		mem.AddUser(usr)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	b := &memBackend{srv: srv, ln: ln, addr: ln.Addr().String()}
	t.Cleanup(func() { srv.Close() })
	return b
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// testProxy is a proxy with one listener of each kind in front of some
// backends.
type testProxy struct {
	srv    *Server
	logs   *observer.ObservedLogs
	caPool *x509.CertPool
}

type proxyOpt func(*Options)

func startProxy(t testing.TB, backends []*routing.Backend, opts ...proxyOpt) *testProxy {
	t.Helper()
	cert, certPEM, err := tlsconf.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := tlsconf.NewStoreFromCertificates([]tls.Certificate{cert}, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tbl, err := routing.NewTable(backends, nil, "default")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	pol := policy.Default()
	pol.FailureBaseDelay = 0
	o := Options{
		Listeners: []Listener{
			{Name: "imaps", Address: "127.0.0.1:0", TLS: ListenerImplicit},
			{Name: "imap", Address: "127.0.0.1:0", TLS: ListenerStartTLS},
			{Name: "plain", Address: "127.0.0.1:0", TLS: ListenerNone},
		},
		Certs:  store,
		Routes: tbl,
		Policy: pol,
		Log:    zap.New(core),
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &testProxy{srv: srv, logs: logs, caPool: pool}
}

func memBackends(addrs ...string) []*routing.Backend {
	var bs []*routing.Backend
	for i, a := range addrs {
		bs = append(bs, &routing.Backend{Name: "mem" + string(rune('1'+i)), Address: a, TLS: routing.TLSNone, Pool: "default", Weight: 1,
			ConnectTimeout: 2 * time.Second, LoginTimeout: 5 * time.Second})
	}
	return bs
}

// rawClient speaks IMAP as text for transcript tests.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

func (p *testProxy) dial(t testing.TB, listener string) *rawClient {
	t.Helper()
	rc := dialRaw(t, p.srv.Addr(listener).String())
	if listener == "imaps" {
		rc.startTLS(p.caPool)
	}
	return rc
}

func (c *rawClient) startTLS(pool *x509.CertPool) {
	c.t.Helper()
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.br = bufio.NewReader(tc)
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *rawClient) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// expect reads one line and checks it starts with prefix.
func (c *rawClient) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want prefix %q", l, prefix)
	}
	return l
}

// expectEOF checks the server closes the connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err == nil {
		c.t.Fatalf("got %q, want the connection closed", l)
	}
}

func mustNetworks(t testing.TB, s ...string) policy.Networks {
	t.Helper()
	n, err := policy.ParseNetworks(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitLog waits until a log entry with message msg has field key == value.
func waitLog(t testing.TB, p *testProxy, msg, key, value string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range p.logs.FilterMessage(msg).All() {
			if v, ok := e.ContextMap()[key]; ok && v == value {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, e := range p.logs.FilterMessage(msg).All() {
		got = append(got, fmt.Sprint(e.ContextMap()))
	}
	t.Fatalf("no %s log with %s=%s; got %v", msg, key, value, got)
}

func fmtFields(m map[string]any) string { return fmt.Sprint(m) }

// testutilCounter reads a counter without labels from the server's registry.
func testutilCounter(t testing.TB, p *testProxy, name string) float64 {
	t.Helper()
	mfs, err := p.srv.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// benchLogging makes the proxy encode its log lines and audit events and
// throw the bytes away, so benchmarks pay for them.
func benchLogging(o *Options) {
	o.Audit = benchAudit()
	o.Log = benchAudit()
}

// benchAudit is an audit logger that encodes every event and throws the
// bytes away, so benchmarks pay for the events.
func benchAudit() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{TimeKey: "ts", EncodeTime: zapcore.RFC3339NanoTimeEncoder})
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.DebugLevel))
}

// answerOK is a fake backend's loop: every command line it reads is
// answered "tag OK text", until the connection ends.
func answerOK(c net.Conn, br *bufio.Reader, text string) {
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, _, _ := strings.Cut(l, " ")
		c.Write([]byte(tag + " OK " + text + "\r\n"))
	}
}

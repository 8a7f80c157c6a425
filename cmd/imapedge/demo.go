package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/zap"

	"github.com/imapedge/imapedge/cmd/imapedge/config"
	"github.com/imapedge/imapedge/policy"
	"github.com/imapedge/imapedge/proxy"
	"github.com/imapedge/imapedge/routing"
	"github.com/imapedge/imapedge/tlsconf"
)

// demoUsers are the demo's accounts. They exist only in the in-memory
// backends of `imapedge demo`.
var demoUsers = []struct{ name, password string }{
	{"alice@demo.test", "alice-demo"},
	{"bob@demo.test", "bob-demo"},
	{"carol@demo.test", "carol-demo"},
}

// demo is a running demo: in-memory backends and the proxy in front.
type demo struct {
	srv      *proxy.Server
	backends []*imapserver.Server
	certFile string
	dir      string
}

func (d *demo) close() {
	d.srv.Close()
	for _, b := range d.backends {
		b.Close()
	}
	os.RemoveAll(d.dir)
}

// startDemo starts two in-memory IMAP backends with the demo users and the
// proxy in front of them on addr (plaintext with STARTTLS) and tlsAddr
// (implicit TLS).
func startDemo(addr, tlsAddr string, log *zap.Logger) (*demo, error) {
	d := &demo{}
	var backends []*routing.Backend
	for i := 1; i <= 2; i++ {
		mem := imapmemserver.New()
		for _, u := range demoUsers {
			usr := imapmemserver.NewUser(u.name, u.password)
			if err := usr.Create("INBOX", nil); err != nil {
				return nil, err
			}
			msg := fmt.Sprintf("From: imapedge demo <demo@demo.test>\r\nTo: %s\r\nSubject: Welcome to the imapedge demo\r\nDate: %s\r\nMessage-ID: <welcome-%d@demo.test>\r\n\r\nThis mailbox lives in demo backend %d, in memory.\r\n",
				u.name, time.Now().Format(time.RFC1123Z), i, i)
			if _, err := usr.Append("INBOX", literal{bytes.NewReader([]byte(msg)), int64(len(msg))}, &imap.AppendOptions{}); err != nil {
				return nil, err
			}
			mem.AddUser(usr)
		}
		srv := imapserver.New(&imapserver.Options{
			NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
				return mem.NewSession(), nil, nil
			},
			Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}, imap.CapIdle: {}, imap.CapMove: {},
				imap.CapUIDPlus: {}, imap.CapNamespace: {}, imap.CapLiteralPlus: {}, imap.CapSASLIR: {}},
			InsecureAuth: true, // the proxy logs in over loopback
			Logger:       zapPrintf{log},
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.closeBackends()
			return nil, err
		}
		go srv.Serve(ln)
		d.backends = append(d.backends, srv)
		backends = append(backends, &routing.Backend{
			Name: fmt.Sprintf("demo%d", i), Address: ln.Addr().String(), TLS: routing.TLSNone,
			Pool: "default", Weight: 1, ConnectTimeout: 5 * time.Second, LoginTimeout: 15 * time.Second,
		})
	}
	table, err := routing.NewTable(backends, nil, "default")
	if err != nil {
		d.closeBackends()
		return nil, err
	}
	cert, certPEM, err := tlsconf.SelfSigned("localhost", "127.0.0.1", "::1")
	if err != nil {
		d.closeBackends()
		return nil, err
	}
	certs, err := tlsconf.NewStoreFromCertificates([]tls.Certificate{cert}, tls.VersionTLS12)
	if err != nil {
		d.closeBackends()
		return nil, err
	}
	d.dir, err = os.MkdirTemp("", "imapedge-demo-")
	if err != nil {
		d.closeBackends()
		return nil, err
	}
	d.certFile = filepath.Join(d.dir, "demo-cert.pem")
	if err := os.WriteFile(d.certFile, certPEM, 0o644); err != nil {
		d.closeBackends()
		return nil, err
	}
	pol := policy.Default()
	// The demo lets loopback clients log in without TLS so that plain
	// curl and telnet work; a real config leaves this empty by default.
	pol.PlaintextAuthNetworks, _ = policy.ParseNetworks([]string{"127.0.0.0/8", "::1"})
	d.srv, err = proxy.New(proxy.Options{
		Listeners: []proxy.Listener{
			{Name: "imap", Address: addr, TLS: proxy.ListenerStartTLS},
			{Name: "imaps", Address: tlsAddr, TLS: proxy.ListenerImplicit},
		},
		Certs:  certs,
		Routes: table,
		Policy: pol,
		Log:    log,
	})
	if err == nil {
		err = d.srv.Start()
	}
	if err != nil {
		d.closeBackends()
		os.RemoveAll(d.dir)
		return nil, err
	}
	return d, nil
}

func (d *demo) closeBackends() {
	for _, b := range d.backends {
		b.Close()
	}
}

type literal struct {
	io.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

// zapPrintf adapts the backends' Printf logging to zap.
type zapPrintf struct{ log *zap.Logger }

func (z zapPrintf) Printf(format string, args ...any) {
	z.log.Debug("demo backend: " + fmt.Sprintf(format, args...))
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	addr := fs.String("addr", "127.0.0.1:10143", "plaintext+STARTTLS listener `address`")
	tlsAddr := fs.String("tls-addr", "127.0.0.1:10993", "implicit TLS listener `address`")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, closeLog, err := buildLogger(config.Log{Level: *level, Format: "console", Output: "stderr"}, stdout, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	d, err := startDemo(*addr, *tlsAddr, log)
	if err != nil {
		return fmt.Errorf("%w (choose other ports with -addr and -tls-addr)", err)
	}
	defer d.close()
	a, ta := d.srv.Addr("imap").String(), d.srv.Addr("imaps").String()
	u := demoUsers[0]
	fmt.Fprintf(stdout, `imapedge demo is running: two in-memory IMAP backends behind the proxy.

  IMAP, plaintext + STARTTLS:  %s   (the demo allows plaintext login from loopback)
  IMAPS, implicit TLS:         %s   (self-signed certificate: %s)

  demo users (each is hashed to one of the backends demo1, demo2):
`, a, ta, d.certFile)
	for _, u := range demoUsers {
		fmt.Fprintf(stdout, "    %-18s password %s\n", u.name, u.password)
	}
	fmt.Fprintf(stdout, `
  try:
    curl --cacert %s --url 'imaps://localhost:%s/INBOX;UID=1' --user '%s:%s'
    python3 -c "import imaplib; c=imaplib.IMAP4('127.0.0.1', %s); c.starttls(); print(c.login('%s', '%s')); print(c.select('INBOX')); c.logout()"
    openssl s_client -quiet -connect %s

Press Ctrl-C to stop.
`, d.certFile, port(ta), u.name, u.password, port(a), u.name, u.password, ta)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

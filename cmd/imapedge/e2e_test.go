package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapedge/imapedge/cmd/imapedge/config"
	"github.com/imapedge/imapedge/proxy/dovecottest"
	"github.com/imapedge/imapedge/tlsconf"
)

// Test accounts of the private Dovecot. Each scenario runs on a fresh
// account so that direct and proxied runs start from the same state.
var e2eUsers = []dovecottest.User{
	{Name: "direct-go", Password: "Dpw-e2e-1"},
	{Name: "proxy-tls-go", Password: "Ppw-e2e-2"},
	{Name: "proxy-starttls-go", Password: "Ppw-e2e-3"},
	{Name: "direct-py", Password: "Dpw-e2e-4"},
	{Name: "proxy-tls-py", Password: "Ppw-e2e-5"},
	{Name: "proxy-starttls-py", Password: "Ppw-e2e-6"},
	{Name: "backend-tls", Password: "Ppw-e2e-7"},
	{Name: "curl-user", Password: "Ppw-e2e-8"},
}

func e2ePassword(name string) string {
	for _, u := range e2eUsers {
		if u.Name == name {
			return u.Password
		}
	}
	panic("no user " + name)
}

// syncBuffer collects the proxy's log output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// e2eEnv is a Dovecot with imapedge in front, wired from a YAML config
// exactly as `imapedge serve` does it.
type e2eEnv struct {
	dovecot    *dovecottest.Server
	rt         *runtime
	logs       *syncBuffer
	audit      *syncBuffer // audit events, when audit.commands is on
	closeAudit func()
	caPool     *x509.CertPool // verifies the proxy's certificate
	certFile   string
	dir        string
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, certPEM, err := tlsconf.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, pemBlock("PRIVATE KEY", keyDER), 0o600)
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// startE2E starts Dovecot and imapedge. backendYAML returns the backends
// (and optionally routing) sections for the Dovecot instance.
func startE2E(t *testing.T, backendYAML func(d *dovecottest.Server) string) *e2eEnv {
	t.Helper()
	return startE2EWith(t, e2eOptions{backends: backendYAML})
}

type e2eOptions struct {
	backends      func(d *dovecottest.Server) string
	extraYAML     string // more top-level sections
	dovecotConfig string // Dovecot ExtraConfig
	compress      string // listeners' compress mode
}

func startE2EWith(t *testing.T, o e2eOptions) *e2eEnv {
	t.Helper()
	backendYAML := o.backends
	if backendYAML == nil {
		backendYAML = plainBackend
	}
	compress := o.compress
	if compress == "" {
		compress = "terminate"
	}
	d := dovecottest.Start(t, dovecottest.Options{Users: e2eUsers, ExtraConfig: o.dovecotConfig})
	dir := t.TempDir()
	certFile, keyFile, pool := writeSelfSigned(t, dir)
	yaml := fmt.Sprintf(`listeners:
  - name: imaps
    address: "127.0.0.1:0"
    tls: implicit
    compress: %s
  - name: imap
    address: "127.0.0.1:0"
    tls: starttls
    compress: %s
tls:
  certificates:
    - cert_file: %s
      key_file: %s
%s
log:
  level: debug
%s`, compress, compress, certFile, keyFile, backendYAML(d), o.extraYAML)
	cfg, err := config.Parse([]byte(yaml), "e2e.yaml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	logs, auditBuf := &syncBuffer{}, &syncBuffer{}
	log, closeLog, err := buildLogger(cfg.Log, logs, logs)
	if err != nil {
		t.Fatal(err)
	}
	audit, closeAudit, err := buildAudit(cfg.Audit, auditBuf, logs)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := build(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	rt.srv.SetAudit(audit)
	if err := rt.srv.Start(); err != nil {
		t.Fatal(err)
	}
	env := &e2eEnv{dovecot: d, rt: rt, logs: logs, audit: auditBuf, closeAudit: closeAudit, caPool: pool, certFile: certFile, dir: dir}
	t.Cleanup(func() {
		rt.srv.Close()
		closeAudit()
		closeLog()
		env.checkNoSecrets(t)
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	return env
}

func plainBackend(d *dovecottest.Server) string {
	return fmt.Sprintf("backends:\n  - name: dovecot1\n    address: %q\n    tls: none\n", d.Addr)
}

// checkNoSecrets fails if any test password appears in the proxy's logs.
func (env *e2eEnv) checkNoSecrets(t *testing.T) {
	logs := env.logs.String() + env.audit.String()
	for _, u := range e2eUsers {
		if strings.Contains(logs, u.Password) {
			t.Errorf("proxy log contains the password of %s", u.Name)
		}
	}
}

func (env *e2eEnv) addr(name string) string { return env.rt.srv.Addr(name).String() }

// dialer connects a go-imap client one way.
type dialer func(t *testing.T, h *imapclient.UnilateralDataHandler) *imapclient.Client

func (env *e2eEnv) goDialers() map[string]dialer {
	proxyTLS := &tls.Config{RootCAs: env.caPool, ServerName: "localhost"}
	direct := &tls.Config{RootCAs: env.dovecot.CAPool, ServerName: "localhost"}
	mk := func(f func(addr string, o *imapclient.Options) (*imapclient.Client, error), addr string, tc *tls.Config) dialer {
		return func(t *testing.T, h *imapclient.UnilateralDataHandler) *imapclient.Client {
			t.Helper()
			c, err := f(addr, &imapclient.Options{TLSConfig: tc, UnilateralDataHandler: h})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	return map[string]dialer{
		"direct-go":         mk(imapclient.DialTLS, env.dovecot.TLSAddr, direct),
		"proxy-tls-go":      mk(imapclient.DialTLS, env.addr("imaps"), proxyTLS),
		"proxy-starttls-go": mk(imapclient.DialStartTLS, env.addr("imap"), proxyTLS),
	}
}

// bigMessage is a 10 MiB message with deterministic content.
func bigMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: e2e <e2e@example.org>\r\nTo: user@example.org\r\nSubject: big one\r\nMessage-ID: <big@e2e>\r\n\r\n")
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n"
	for i := 0; b.Len() < 10<<20; i++ {
		fmt.Fprintf(&b, "%08d ", i)
		b.WriteString(line)
	}
	return b.Bytes()
}

func smallMessage(subject string) []byte {
	return []byte("From: e2e <e2e@example.org>\r\nTo: user@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@e2e>\r\n\r\nhello body of " + subject + "\r\n")
}

// goScenario works a mailbox through one path and returns what it saw,
// normalized so that runs against different paths can be compared.
func goScenario(t *testing.T, dial dialer, user string) map[string]any {
	t.Helper()
	res := map[string]any{}
	var existsMu sync.Mutex
	var exists []uint32
	c := dial(t, &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		if d.NumMessages != nil {
			existsMu.Lock()
			exists = append(exists, *d.NumMessages)
			existsMu.Unlock()
		}
	}})
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %s: %v", user, what, err)
		}
	}
	must(c.Login(user, e2ePassword(user)).Wait(), "login")
	must(c.Create("Archive", nil).Wait(), "create")
	var uids []uint32
	for _, m := range [][]byte{smallMessage("hello one"), bigMessage(), smallMessage("hello three")} {
		a := c.Append("INBOX", int64(len(m)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
		_, err := a.Write(m)
		must(err, "append write")
		must(a.Close(), "append close")
		data, err := a.Wait()
		must(err, "append")
		uids = append(uids, uint32(data.UID))
	}
	res["append_uids"] = uids
	sel, err := c.Select("INBOX", nil).Wait()
	must(err, "select")
	res["select_exists"] = sel.NumMessages
	fetch := func() []string {
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, RFC822Size: true, Envelope: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		must(err, "fetch")
		var out []string
		for _, m := range msgs {
			var body []byte
			for _, s := range m.BodySection {
				body = s.Bytes
			}
			sum := sha256.Sum256(body)
			var flags []string
			for _, f := range m.Flags {
				flags = append(flags, string(f))
			}
			sort.Strings(flags)
			out = append(out, fmt.Sprintf("%d uid=%d size=%d subj=%q flags=%v body=%s", m.SeqNum, m.UID, m.RFC822Size, m.Envelope.Subject, flags, hex.EncodeToString(sum[:8])))
		}
		return out
	}
	res["fetch"] = fetch()
	sd, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "hello"}}}, nil).Wait()
	must(err, "search")
	res["search"] = sd.AllSeqNums()
	_, err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	must(err, "store")
	cp, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	must(err, "copy")
	res["copy_dest"] = cp.DestUIDs.String()
	_, err = c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	must(err, "store deleted")
	exp, err := c.Expunge().Collect()
	must(err, "expunge")
	res["expunged"] = exp
	res["fetch_after"] = fetch()

	// IDLE: a second session's APPEND shows up as EXISTS.
	existsMu.Lock()
	exists = nil
	existsMu.Unlock()
	idle, err := c.Idle()
	must(err, "idle")
	c2 := dial(t, nil)
	must(c2.Login(user, e2ePassword(user)).Wait(), "login 2")
	m := smallMessage("during idle")
	a := c2.Append("INBOX", int64(len(m)), nil)
	a.Write(m)
	a.Close()
	_, err = a.Wait()
	must(err, "append 2")
	must(c2.Logout().Wait(), "logout 2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		existsMu.Lock()
		n := len(exists)
		existsMu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(idle.Close(), "idle done")
	must(idle.Wait(), "idle")
	existsMu.Lock()
	res["idle_exists"] = exists
	existsMu.Unlock()
	st, err := c.Status("Archive", &imap.StatusOptions{NumMessages: true}).Wait()
	must(err, "status")
	res["archive_messages"] = *st.NumMessages
	must(c.Logout().Wait(), "logout")
	return res
}

func TestE2EGoClientMatchesDirectDovecot(t *testing.T) {
	env := startE2E(t, plainBackend)
	dialers := env.goDialers()
	want := goScenario(t, dialers["direct-go"], "direct-go")
	wantJSON, _ := json.MarshalIndent(want, "", "  ")
	if ex, _ := want["idle_exists"].([]uint32); len(ex) == 0 {
		t.Fatalf("direct run saw no EXISTS during IDLE: %s", wantJSON)
	}
	for _, path := range []string{"proxy-tls-go", "proxy-starttls-go"} {
		t.Run(path, func(t *testing.T) {
			got := goScenario(t, dialers[path], path)
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Fatalf("through %s:\n%s\ndirect:\n%s", path, gotJSON, wantJSON)
			}
		})
	}
	// Every proxied session of the run ends with a session_end line.
	env.waitLog(t, `"msg":"session_end"`, 4)
}

func TestE2EPythonImaplibMatchesDirectDovecot(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 not installed")
	}
	env := startE2E(t, plainBackend)
	run := func(host, port, mode, user, cafile string) string {
		t.Helper()
		cmd := exec.Command(py, "testdata/imaplib_scenario.py", host, port, mode, user, cafile)
		cmd.Env = append(os.Environ(), "E2E_PASSWORD="+e2ePassword(user))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", user, err, stderr.String())
		}
		return string(out)
	}
	split := func(a string) (string, string) { i := strings.LastIndexByte(a, ':'); return a[:i], a[i+1:] }
	h, p := split(env.dovecot.TLSAddr)
	want := run(h, p, "ssl", "direct-py", env.dovecot.CAFile)
	if !strings.Contains(want, `"idle_exists"`) {
		t.Fatalf("direct run: %s", want)
	}
	h, p = split(env.addr("imaps"))
	if got := run(h, p, "ssl", "proxy-tls-py", env.certFile); got != want {
		t.Fatalf("implicit TLS through imapedge:\n%s\ndirect:\n%s", got, want)
	}
	h, p = split(env.addr("imap"))
	if got := run(h, p, "starttls", "proxy-starttls-py", env.certFile); got != want {
		t.Fatalf("STARTTLS through imapedge:\n%s\ndirect:\n%s", got, want)
	}
}

func TestE2ECurlFetch(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is required in CI")
		}
		t.Skip("curl not installed")
	}
	env := startE2E(t, plainBackend)
	// Put a message in place with the go client through the proxy.
	c := env.goDialers()["proxy-tls-go"](t, nil)
	if err := c.Login("curl-user", e2ePassword("curl-user")).Wait(); err != nil {
		t.Fatal(err)
	}
	m := smallMessage("for curl")
	a := c.Append("INBOX", int64(len(m)), nil)
	a.Write(m)
	a.Close()
	if _, err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	_, port, _ := strings.Cut(env.addr("imaps"), "127.0.0.1:")
	out, err := exec.Command(curl, "-sS", "--cacert", env.certFile, "--url", "imaps://localhost:"+port+"/INBOX;UID=1",
		"--user", "curl-user:"+e2ePassword("curl-user")).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("hello body of for curl")) {
		t.Fatalf("curl got %q", out)
	}
}

// TestE2EBackendTLS logs in through backends reached over STARTTLS and
// implicit TLS, with certificate verification on, and checks that a wrong
// server name is refused.
func TestE2EBackendTLS(t *testing.T) {
	var d *dovecottest.Server
	env := startE2E(t, func(dc *dovecottest.Server) string {
		d = dc
		return fmt.Sprintf(`backends:
  - name: starttls
    address: %q
    tls: starttls
    ca_file: %s
    server_name: localhost
    pool: st
  - name: implicit
    address: %q
    tls: implicit
    ca_file: %s
    pool: imp
  - name: wrongname
    address: %q
    tls: implicit
    ca_file: %s
    server_name: not-the-cert-name.example
    pool: wrong
  - name: skipverify
    address: %q
    tls: implicit
    insecure_skip_verify: true
    pool: skip
routing:
  default_pool: st
  routes:
    - user: backend-tls
      pool: st
`, dc.Addr, dc.CAFile, dc.TLSAddr, dc.CAFile, dc.TLSAddr, dc.CAFile, dc.TLSAddr)
	})
	_ = d
	for _, tc := range []struct {
		pool string
		ok   bool
	}{{"st", true}, {"imp", true}, {"wrong", false}, {"skip", true}} {
		t.Run(tc.pool, func(t *testing.T) {
			if err := env.rt.table.Replace(env.rt.table.Backends(), nil, tc.pool); err != nil {
				t.Fatal(err)
			}
			c := env.goDialers()["proxy-tls-go"](t, nil)
			err := c.Login("backend-tls", e2ePassword("backend-tls")).Wait()
			if tc.ok != (err == nil) {
				t.Fatalf("login through pool %s: %v", tc.pool, err)
			}
			if err == nil {
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					t.Fatal(err)
				}
			} else if !strings.Contains(err.Error(), "UNAVAILABLE") {
				t.Fatalf("want UNAVAILABLE, got %v", err)
			}
		})
	}
}

// TestE2EBackendKilled kills Dovecot under a logged-in idle session: the
// client gets BYE [UNAVAILABLE] and the session ends as backend_lost.
func TestE2EBackendKilled(t *testing.T) {
	env := startE2E(t, plainBackend)
	rc := dialE2E(t, env.addr("imaps"), env.caPool)
	rc.expect("* OK")
	rc.send("a LOGIN backend-tls " + e2ePassword("backend-tls") + "\r\n")
	rc.until("a OK")
	rc.send("b SELECT INBOX\r\n")
	rc.until("b OK")
	env.dovecot.Kill()
	rc.until("* BYE [UNAVAILABLE]")
	rc.expectEOF()
	env.waitLog(t, `"reason":"backend_lost"`, 1)
}

// waitLog waits until the proxy log holds at least n lines containing s.
func (env *e2eEnv) waitLog(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(env.logs.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("want %d log lines with %s, got %d", n, s, strings.Count(env.logs.String(), s))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

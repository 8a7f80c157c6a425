// Package dovecottest starts real, private Dovecot instances (Debian 12's
// dovecot-imapd, Dovecot 2.3) for integration tests.
//
// Each instance lives in its own temporary directory: configuration,
// base_dir (sockets), state_dir, log files, a passwd-file with the test
// users, the Maildirs and a freshly generated CA and server certificate.
// It listens only on 127.0.0.1, on two ephemeral ports: a plain IMAP listener
// that offers STARTTLS, and an implicit-TLS listener. Instances do not share
// anything, so any number of them can run at the same time, also from
// different test binaries.
//
// The Dovecot master runs as a child of the test process in its own process
// group; Stop and Kill act on that group only, never on the system-wide
// Dovecot or on other instances. If the test binary dies, the kernel kills
// the master (PR_SET_PDEATHSIG) and Dovecot's children follow it.
//
// Dovecot settings chosen for tests (ExtraConfig can override any of them):
//
//   - disable_plaintext_auth = no, auth_mechanisms = plain login: LOGIN over
//     plain loopback works.
//   - login_trusted_networks = 127.0.0.0/8: ID x-originating-ip etc. from a
//     proxy on loopback are accepted.
//   - auth_failure_delay = 0 and the anvil auth-penalty socket disabled:
//     failed logins do not slow down later logins from 127.0.0.1 (Dovecot
//     2.3.19 still answers a failed login after about 0.5 s).
//   - mail_max_userip_connections = 0 (no limit; Dovecot's default of 10
//     per user and IP is easily reached through a proxy on loopback).
//   - mail_fsync = never (speed; a killed Dovecot does not lose the page
//     cache).
//   - login_greeting is "<instance name> ready.", so the greeting reads
//     "* OK [CAPABILITY ...] dovecottest-<random hex> ready."; Start uses
//     that to make sure it talks to its own instance.
//   - User names are lowercased by Dovecot's default auth_username_format
//     (%Lu), so they are written to the passwd-file in lowercase.
//   - As root, mail processes run as nobody:nogroup and the other processes
//     as the users of the dovecot-core package (dovecot, dovenull). Not as
//     root, every process runs as the current user (rootless Dovecot).
//
// Start takes about 0.1 s, Stop about 50 ms and Kill about 10 ms. Start's
// readiness probes appear in the log as logins aborted by LOGOUT.
//
// Process limits are Dovecot's defaults: one imap-login process per
// connection, at most 100 (for TLS connections the login process stays for
// the whole session, as TLS proxy), and one imap process per session, at
// most 1024. Tests with many sessions should raise them through
// ExtraConfig, e.g.
//
//	service imap-login {
//	  service_count = 0
//	  client_limit = 1000
//	}
//	service imap {
//	  client_limit = 1000
//	}
//
// If Dovecot is not installed (see scripts/install-test-deps.sh), Start skips
// the test, unless the environment variable CI or IMAPEDGE_REQUIRE_DOVECOT is
// non-empty, in which case the test fails.
package dovecottest

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// User is a test account. Name must not contain ':', '/', '%', whitespace or
// control characters, and Password must not contain ':' or control
// characters.
type User struct{ Name, Password string }

// Options configures an instance.
type Options struct {
	// Users are the accounts that can log in. Default: none.
	Users []User
	// ExtraConfig is appended verbatim to dovecot.conf, after the harness's
	// own settings, so it can override them; sections with the same name
	// (e.g. "service imap { client_limit = 1000 }") are merged.
	ExtraConfig string
}

// Server is a running private Dovecot instance.
type Server struct {
	// Addr is the plain IMAP listener ("127.0.0.1:PORT"); it offers STARTTLS.
	Addr string
	// TLSAddr is the implicit-TLS IMAP listener ("127.0.0.1:PORT").
	TLSAddr string
	// CAPool verifies the server certificate (for ServerName and for
	// 127.0.0.1).
	CAPool *x509.CertPool
	// CAFile is the PEM file of the CA certificate in CAPool, for clients
	// such as curl (--cacert) or Python's ssl module.
	CAFile string
	// ServerName is the DNS name in the server certificate: "localhost".
	// The certificate also has the IP SAN 127.0.0.1.
	ServerName string
	// Dir is the instance's private directory (configuration, base_dir,
	// mail, logs). It is removed when the test ends.
	Dir string

	conf       string // path of dovecot.conf
	logPath    string // Dovecot's log_path/info_log_path
	stderrPath string // master's stdout/stderr
	token      string // unique text in the greeting

	mu   sync.Mutex
	inst *instance // nil once stopped or killed
}

const (
	startTimeout  = 20 * time.Second
	startAttempts = 5
	stopTimeout   = 10 * time.Second
	serverName    = "localhost"
	logTailLines  = 200
)

// Available reports whether the dovecot binary is installed.
func Available() bool { return dovecotBinary() != "" }

func dovecotBinary() string {
	if !supported {
		return ""
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p
	}
	// /usr/sbin is often not in a non-root user's PATH.
	p := fallbackBinary
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

// fallbackBinary is where Debian installs dovecot; tests change it.
var fallbackBinary = "/usr/sbin/dovecot"

func dovecotRequired() bool {
	return os.Getenv("CI") != "" || os.Getenv("IMAPEDGE_REQUIRE_DOVECOT") != ""
}

// Start starts a private Dovecot instance and waits until both listeners
// greet. It registers a cleanup with tb that stops the instance and removes
// its directory (and, if the test failed, logs the tail of Dovecot's log).
// On error it fails the test with Dovecot's log.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := dovecotBinary()
	if bin == "" {
		msg := "dovecottest: dovecot is not installed (run scripts/install-test-deps.sh as root)"
		if dovecotRequired() {
			tb.Fatal(msg + "; CI or IMAPEDGE_REQUIRE_DOVECOT is set, so this is an error")
		}
		tb.Skip(msg)
	}
	if err := checkUsers(opts.Users); err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}

	s := &Server{ServerName: serverName}
	dir, err := makeDir()
	if err != nil {
		tb.Fatalf("dovecottest: %v", err)
	}
	s.Dir = dir
	tb.Cleanup(func() {
		if tb.Failed() {
			if tail := s.logTail(logTailLines); tail != "" {
				tb.Logf("dovecottest: last lines of the Dovecot log (%s):\n%s", s.Dir, tail)
			}
		}
		s.Stop()
		os.RemoveAll(s.Dir)
	})

	if err := s.start(bin, opts); err != nil {
		tb.Fatalf("dovecottest: %v\n%s", err, s.Log())
	}
	return s
}

// Launch starts a private Dovecot instance outside of a test (the
// benchmark uses it). The caller must Stop it and remove Dir.
func Launch(opts Options) (*Server, error) {
	bin := dovecotBinary()
	if bin == "" {
		return nil, errors.New("dovecottest: dovecot is not installed (run scripts/install-test-deps.sh as root)")
	}
	if err := checkUsers(opts.Users); err != nil {
		return nil, fmt.Errorf("dovecottest: %w", err)
	}
	s := &Server{ServerName: serverName}
	dir, err := makeDir()
	if err != nil {
		return nil, fmt.Errorf("dovecottest: %w", err)
	}
	s.Dir = dir
	if err := s.start(bin, opts); err != nil {
		log := s.Log()
		s.Stop()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("dovecottest: %w\n%s", err, log)
	}
	return s, nil
}

// Stop shuts the instance down gracefully: every process of the instance
// except the log process gets SIGTERM, so the listeners close, logged-in
// clients get "* BYE Server shutting down." and login processes close
// their connections. Whatever is left after that (at the latest after 10 s)
// is killed. Stop waits until no process of the instance is left; it
// usually takes well under 100 ms. It is idempotent, and a no-op after Kill.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst == nil {
		return
	}
	s.inst.stop(stopTimeout)
	s.inst = nil
}

// Kill sends SIGKILL to every process of the instance (master, log, auth,
// imap-login, imap, ...) at once, to simulate a crashed backend: listeners
// refuse new connections and existing connections are closed without an
// IMAP goodbye. Kill waits until the processes are gone. It is idempotent,
// and a no-op after Stop.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst == nil {
		return
	}
	s.inst.kill()
	s.inst = nil
}

// Log returns the contents of the instance's log files, for failure
// messages.
func (s *Server) Log() string {
	var b strings.Builder
	for _, p := range []string{s.logPath, s.stderrPath} {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s", filepath.Base(p), data)
		if data[len(data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (s *Server) logTail(n int) string {
	lines := strings.SplitAfter(s.Log(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

func checkUsers(users []User) error {
	seen := map[string]bool{}
	for _, u := range users {
		if u.Name == "" || strings.ContainsAny(u.Name, ":/%\\") || strings.IndexFunc(u.Name, isSpaceOrCtl) >= 0 {
			return fmt.Errorf("invalid user name %q", u.Name)
		}
		if strings.ContainsRune(u.Password, ':') || strings.IndexFunc(u.Password, isCtl) >= 0 {
			return fmt.Errorf("invalid password for user %q (no ':' or control characters)", u.Name)
		}
		name := strings.ToLower(u.Name)
		if seen[name] {
			return fmt.Errorf("duplicate user %q (Dovecot lowercases user names)", u.Name)
		}
		seen[name] = true
	}
	return nil
}

func isCtl(r rune) bool        { return r < 0x20 || r == 0x7f }
func isSpaceOrCtl(r rune) bool { return r == ' ' || isCtl(r) }

// identity holds the accounts Dovecot's processes run as.
type identity struct {
	root          bool
	internalUser  string // default_internal_user
	internalGroup string // default_internal_group
	loginUser     string // default_login_user
	mailUID       int
	mailGID       int
	passwdGID     int // group that may read the passwd-file (-1: keep)
}

func lookupIdentity() (identity, error) {
	if os.Geteuid() != 0 {
		// Rootless Dovecot: every process runs as the current user.
		u, err := user.Current()
		if err != nil {
			return identity{}, fmt.Errorf("looking up the current user: %w", err)
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return identity{}, fmt.Errorf("looking up the current group: %w", err)
		}
		return identity{
			internalUser:  u.Username,
			internalGroup: g.Name,
			loginUser:     u.Username,
			mailUID:       os.Geteuid(),
			mailGID:       os.Getegid(),
			passwdGID:     -1,
		}, nil
	}
	id := identity{root: true, internalUser: "dovecot", internalGroup: "dovecot", loginUser: "dovenull", passwdGID: -1}
	for _, name := range []string{id.internalUser, id.loginUser} {
		if _, err := user.Lookup(name); err != nil {
			return identity{}, fmt.Errorf("user %q (created by the dovecot-core package) not found: %w", name, err)
		}
	}
	if g, err := user.LookupGroup(id.internalGroup); err == nil {
		id.passwdGID, _ = strconv.Atoi(g.Gid)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return identity{}, fmt.Errorf("user nobody not found: %w", err)
	}
	id.mailUID, _ = strconv.Atoi(nobody.Uid)
	id.mailGID, _ = strconv.Atoi(nobody.Gid)
	if g, err := user.LookupGroup("nogroup"); err == nil {
		id.mailGID, _ = strconv.Atoi(g.Gid)
	}
	return id, nil
}

// makeDir creates the instance directory. Its path is kept short (unix
// socket paths are limited to 107 bytes) and every parent must be
// traversable by the unprivileged users Dovecot's processes run as, so it
// falls back to /tmp when $TMPDIR does not qualify. Parents are never
// chmodded.
func makeDir() (string, error) {
	parent := os.TempDir()
	if len(parent) > 40 || !traversable(parent) {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "dovecottest-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// traversable reports whether others may search every directory on the path.
func traversable(path string) bool {
	path, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(path)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(path)
		if parent == path {
			return true
		}
		path = parent
	}
}

func (s *Server) start(bin string, opts Options) error {
	id, err := lookupIdentity()
	if err != nil {
		return err
	}
	s.conf = filepath.Join(s.Dir, "dovecot.conf")
	s.logPath = filepath.Join(s.Dir, "dovecot.log")
	s.stderrPath = filepath.Join(s.Dir, "master.out")
	s.CAFile = filepath.Join(s.Dir, "ca.pem")

	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	s.token = "dovecottest-" + hex.EncodeToString(rnd[:])

	pool, err := writeCerts(s.Dir)
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}
	s.CAPool = pool
	if err := writePasswd(filepath.Join(s.Dir, "passwd"), opts.Users, id); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(s.Dir, "state"), 0o755); err != nil {
		return err
	}
	mail := filepath.Join(s.Dir, "mail")
	if err := os.Mkdir(mail, 0o750); err != nil {
		return err
	}
	if id.root {
		if err := os.Chown(mail, id.mailUID, id.mailGID); err != nil {
			return err
		}
	}

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		ports, err := pickPorts(2)
		if err != nil {
			return err
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		conf := s.config(id, ports, opts.ExtraConfig)
		if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
			return err
		}
		logStart := fileSize(s.logPath)
		outStart := fileSize(s.stderrPath)

		out, err := os.OpenFile(s.stderrPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		inst, err := launch(bin, s.conf, out)
		out.Close()
		if err != nil {
			return fmt.Errorf("starting %s: %w", bin, err)
		}
		err = s.waitReady(inst, time.Now().Add(startTimeout))
		if err == nil {
			s.mu.Lock()
			s.inst = inst
			s.mu.Unlock()
			return nil
		}
		inst.kill()
		lastErr = err
		if !s.bindFailed(logStart, outStart) {
			return err
		}
		appendLine(s.logPath, fmt.Sprintf("dovecottest: attempt %d could not bind its ports (%s, %s), retrying with new ports", attempt, s.Addr, s.TLSAddr))
	}
	return fmt.Errorf("giving up after %d attempts: %w", startAttempts, lastErr)
}

func (s *Server) config(id identity, ports []int, extra string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	d := s.Dir
	p("# Private Dovecot instance generated by github.com/imapedge/imapedge/proxy/dovecottest.")
	p("instance_name = %s", s.token)
	p("base_dir = %s/run", d)
	p("state_dir = %s/state", d)
	p("protocols = imap")
	p("listen = 127.0.0.1")
	p("login_greeting = %s ready.", s.token)
	p("log_path = %s", s.logPath)
	p("info_log_path = %s", s.logPath)
	p("")
	p("ssl = yes")
	p("ssl_cert = <%s/server.pem", d)
	p("ssl_key = <%s/server.key", d)
	p("disable_plaintext_auth = no")
	p("auth_mechanisms = plain login")
	p("auth_failure_delay = 0")
	p("login_trusted_networks = 127.0.0.0/8")
	p("mail_max_userip_connections = 0")
	p("")
	p("default_internal_user = %s", id.internalUser)
	p("default_internal_group = %s", id.internalGroup)
	p("default_login_user = %s", id.loginUser)
	p("first_valid_uid = %d", id.mailUID)
	p("first_valid_gid = %d", id.mailGID)
	p("mail_uid = %d", id.mailUID)
	p("mail_gid = %d", id.mailGID)
	p("mail_location = maildir:%s/mail/%%u/Maildir", d)
	p("mail_fsync = never")
	p("")
	p("passdb {")
	p("  driver = passwd-file")
	p("  args = scheme=PLAIN username_format=%%u %s/passwd", d)
	p("}")
	p("userdb {")
	p("  driver = static")
	p("  args = uid=%d gid=%d home=%s/mail/%%u", id.mailUID, id.mailGID, d)
	p("}")
	p("")
	p("# Failed logins would otherwise delay every later login from the same IP")
	p("# (2 s, 4 s, ... up to 15 s); trusted networks are not exempt in 2.3.")
	p("# mode = 0 removes the listener, which disables the penalty.")
	p("service anvil {")
	p("  unix_listener anvil-auth-penalty {")
	p("    mode = 0")
	p("  }")
	if !id.root {
		p("  chroot =")
	}
	p("}")
	p("service imap-login {")
	p("  inet_listener imap {")
	p("    address = 127.0.0.1")
	p("    port = %d", ports[0])
	p("  }")
	p("  inet_listener imaps {")
	p("    address = 127.0.0.1")
	p("    port = %d", ports[1])
	p("    ssl = yes")
	p("  }")
	if !id.root {
		p("  chroot =")
	}
	p("}")
	if !id.root {
		p("service imap-urlauth-login {")
		p("  chroot =")
		p("}")
	}
	if strings.TrimSpace(extra) != "" {
		p("")
		p("# Options.ExtraConfig")
		b.WriteString(extra)
		if !strings.HasSuffix(extra, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func writePasswd(path string, users []User, id identity) error {
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", strings.ToLower(u.Name), u.Password)
	}
	mode := os.FileMode(0o640)
	if id.root && id.passwdGID < 0 {
		mode = 0o644
	}
	if err := os.WriteFile(path, []byte(b.String()), mode); err != nil {
		return err
	}
	if id.root && id.passwdGID >= 0 {
		return os.Chown(path, 0, id.passwdGID)
	}
	return nil
}

// pickPorts is FreePorts; tests replace it to provoke bind failures.
var pickPorts = FreePorts

// FreePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago. Dovecot cannot listen on port 0, so this is racy; start retries.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitReady waits until both listeners send this instance's greeting.
func (s *Server) waitReady(inst *instance, deadline time.Time) error {
	tlsConf := &tls.Config{RootCAs: s.CAPool, ServerName: s.ServerName}
	plainOK := false
	var lastErr error
	for {
		select {
		case <-inst.exited:
			return fmt.Errorf("dovecot exited during startup: %v", inst.waitErr)
		default:
		}
		if !plainOK {
			if lastErr = probe(s.Addr, nil, s.token); lastErr == nil {
				plainOK = true
			}
		}
		if plainOK {
			if lastErr = probe(s.TLSAddr, tlsConf, s.token); lastErr == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot not ready after %v: %v", startTimeout, lastErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func probe(addr string, tlsConf *tls.Config, token string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if tlsConf != nil {
		tc := tls.Client(c, tlsConf)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c = tc
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading greeting from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, "* OK ") || !strings.Contains(line, token) {
		return fmt.Errorf("unexpected greeting from %s: %q", addr, line)
	}
	fmt.Fprintf(c, "a LOGOUT\r\n")
	return nil
}

func (s *Server) bindFailed(logStart, outStart int64) bool {
	for _, f := range []struct {
		path string
		off  int64
	}{{s.logPath, logStart}, {s.stderrPath, outStart}} {
		data, err := os.ReadFile(f.path)
		if err != nil || int64(len(data)) < f.off {
			continue
		}
		if strings.Contains(string(data[f.off:]), "Address already in use") {
			return true
		}
	}
	return false
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(line + "\n")
}

var errUnsupported = errors.New("dovecottest is only supported on Linux")

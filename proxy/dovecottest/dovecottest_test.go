//go:build linux

package dovecottest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

var alice = User{Name: "alice", Password: "alice-secret"}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CAPool, ServerName: s.ServerName}
}

// login logs in and fails the test on error.
func login(t *testing.T, c *imapclient.Client, u User) {
	t.Helper()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", u.Name, err)
	}
}

// appendAndSelect appends a message to INBOX and checks that SELECT sees it.
func appendAndSelect(t *testing.T, c *imapclient.Client, subject string) {
	t.Helper()
	msg := fmt.Sprintf("From: a@example.org\r\nTo: b@example.org\r\nSubject: %s\r\n\r\nhello\r\n", subject)
	before, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := io.WriteString(cmd, msg); err != nil {
		t.Fatalf("APPEND write: %v", err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND close: %v", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	if data.UID == 0 {
		t.Errorf("APPEND returned no APPENDUID")
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT: %v", err)
	}
	after, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	if after.NumMessages != before.NumMessages+1 {
		t.Fatalf("INBOX has %d messages after APPEND, want %d", after.NumMessages, before.NumMessages+1)
	}
}

func TestPlainLoginAppendSelect(t *testing.T) {
	start := time.Now()
	s := Start(t, Options{Users: []User{alice, {Name: "Bob", Password: "b0b pass"}}})
	// About 0.1 s on an idle machine; not asserted, as a loaded machine
	// (parallel test binaries on 2 cores) can take seconds.
	t.Logf("Start took %v (Addr %s, TLSAddr %s, Dir %s)", time.Since(start), s.Addr, s.TLSAddr, s.Dir)
	for _, a := range []string{s.Addr, s.TLSAddr} {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("listener %q not on 127.0.0.1", a)
		}
	}

	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	caps := c.Caps()
	for _, cp := range []imap.Cap{imap.CapStartTLS, imap.Cap("AUTH=PLAIN")} {
		if !caps.Has(cp) {
			t.Errorf("greeting capabilities %v lack %s", caps, cp)
		}
	}
	if caps.Has(imap.CapLoginDisabled) {
		t.Errorf("LOGINDISABLED advertised on plain loopback")
	}
	login(t, c, alice)
	appendAndSelect(t, c, "plain")
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}

	// Dovecot lowercases user names; the mixed-case user can log in.
	c2, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	login(t, c2, User{Name: "Bob", Password: "b0b pass"})
	appendAndSelect(t, c2, "bob")

	if !strings.Contains(s.Log(), "Login: user=<alice>") {
		t.Errorf("Log() lacks alice's login:\n%s", s.Log())
	}
	if strings.Contains(s.Log(), alice.Password) {
		t.Errorf("Log() contains a password")
	}

	if os.Geteuid() == 0 {
		// Mail is written by nobody, never by root.
		err := filepath.Walk(filepath.Join(s.Dir, "mail"), func(path string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != 65534 {
				return fmt.Errorf("%s is owned by uid %d, want nobody (65534)", path, st.Uid)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(s.Dir, "mail", "bob", "Maildir")); err != nil {
			t.Error(err)
		}
	}
}

func TestSTARTTLS(t *testing.T) {
	s := Start(t, Options{Users: []User{alice}})

	// A client that does not trust the CA must fail.
	bad, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: &tls.Config{ServerName: s.ServerName}})
	if err == nil {
		err = bad.Noop().Wait()
		bad.Close()
	}
	if err == nil {
		t.Errorf("STARTTLS without the CA succeeded")
	}

	c, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: s.tlsConfig()})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	login(t, c, alice)
	appendAndSelect(t, c, "starttls")
}

func TestImplicitTLS(t *testing.T) {
	s := Start(t, Options{Users: []User{alice}})

	for _, name := range []string{s.ServerName, "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			cfg := s.tlsConfig()
			cfg.ServerName = name
			c, err := imapclient.DialTLS(s.TLSAddr, &imapclient.Options{TLSConfig: cfg})
			if err != nil {
				t.Fatalf("TLS: %v", err)
			}
			defer c.Close()
			login(t, c, alice)
			appendAndSelect(t, c, "tls "+name)
		})
	}

	// CAFile holds the same CA.
	pem, err := os.ReadFile(s.CAFile)
	if err != nil || !strings.Contains(string(pem), "BEGIN CERTIFICATE") {
		t.Fatalf("CAFile %s: %v", s.CAFile, err)
	}
	conn, err := tls.Dial("tcp", s.TLSAddr, &tls.Config{ServerName: "wrong.example", RootCAs: s.CAPool})
	if err == nil {
		conn.Close()
		t.Errorf("TLS with a wrong server name succeeded")
	}
}

// TestFailedLoginNoPenalty checks that failed logins do not slow down later
// logins from 127.0.0.1: with Dovecot's auth penalty, every failed login
// after the first would wait at least 4 s before it is even checked.
func TestFailedLoginNoPenalty(t *testing.T) {
	s := Start(t, Options{Users: []User{alice}})
	if _, err := os.Stat(filepath.Join(s.Dir, "run", "anvil-auth-penalty")); !os.IsNotExist(err) {
		t.Errorf("anvil-auth-penalty socket exists (%v); the auth penalty is on", err)
	}
	fastest := time.Hour
	for i := range 4 {
		c, err := imapclient.DialInsecure(s.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.WaitGreeting(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.Login(alice.Name, "wrong").Wait()
		d := time.Since(start)
		c.Close()
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("LOGIN with a wrong password: %v, want NO [AUTHENTICATIONFAILED]", err)
		}
		t.Logf("failed login %d took %v", i, d)
		if i > 0 && d < fastest {
			fastest = d
		}
	}
	// Dovecot 2.3.19 answers a failure after about 0.5 s. Compare the
	// fastest one only, so that a loaded machine does not fail the test.
	if fastest > 3500*time.Millisecond {
		t.Errorf("failed logins after the first took at least %v; auth penalty active?", fastest)
	}
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	login(t, c, alice)
}

func TestKill(t *testing.T) {
	s := Start(t, Options{Users: []User{alice}})
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	login(t, c, alice)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// A second, raw session that is still in the login phase.
	raw, err := net.Dial("tcp", s.TLSAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	pg := s.inst.pid
	if n := countGroup(pg); n < 4 {
		t.Errorf("only %d processes in the instance's group before Kill", n)
	}
	if os.Geteuid() == 0 {
		checkMailProcessUser(t, pg)
	}

	start := time.Now()
	s.Kill()
	t.Logf("Kill took %v", time.Since(start))
	if n := countGroup(pg); n != 0 {
		t.Errorf("%d processes of the instance survived Kill", n)
	}
	for _, a := range []string{s.Addr, s.TLSAddr} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Kill", a)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s after Kill: %v, want connection refused", a, err)
		}
	}
	// The logged-in session is cut off without a BYE.
	if err := c.Noop().Wait(); err == nil {
		t.Errorf("NOOP on a killed backend succeeded")
	}
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(raw); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("raw connection after Kill: %v, want EOF or reset", err)
	}

	s.Kill() // idempotent
	s.Stop() // no-op
}

func TestStop(t *testing.T) {
	s := Start(t, Options{Users: []User{alice}})
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil { // greeting
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "a LOGIN %s %s\r\n", alice.Name, alice.Password)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "a OK") {
		t.Fatalf("LOGIN: %q, %v", line, err)
	}
	pg := s.inst.pid

	start := time.Now()
	s.Stop()
	d := time.Since(start)
	// About 50 ms on an idle machine. Without signalling the imap
	// processes directly, the BYE would only come after 10 s.
	t.Logf("Stop took %v", d)
	if d > 8*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if n := countGroup(pg); n != 0 {
		t.Errorf("%d processes of the instance survived Stop", n)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "* BYE") {
		t.Errorf("graceful stop sent %q, want a BYE", rest)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Stop", s.Addr)
	}
	s.Stop() // idempotent
	s.Kill() // no-op
}

func TestTwoInstances(t *testing.T) {
	a := Start(t, Options{Users: []User{alice}})
	b := Start(t, Options{Users: []User{alice}})
	if a.Addr == b.Addr || a.TLSAddr == b.TLSAddr || a.Dir == b.Dir {
		t.Fatalf("instances share listeners or directories: %+v %+v", a, b)
	}
	var clients []*imapclient.Client
	for i, s := range []*Server{a, b} {
		c, err := imapclient.DialTLS(s.TLSAddr, &imapclient.Options{TLSConfig: s.tlsConfig()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		login(t, c, alice)
		appendAndSelect(t, c, fmt.Sprintf("instance %d", i))
		clients = append(clients, c)
	}
	// The mail stores are separate.
	for _, c := range clients {
		data, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if data.NumMessages != 1 {
			t.Errorf("INBOX has %d messages, want 1", data.NumMessages)
		}
	}
	// Killing one leaves the other alone.
	a.Kill()
	if err := clients[1].Noop().Wait(); err != nil {
		t.Errorf("NOOP on the surviving instance: %v", err)
	}
	c, err := imapclient.DialInsecure(b.Addr, nil)
	if err != nil {
		t.Fatalf("dial surviving instance: %v", err)
	}
	defer c.Close()
	login(t, c, alice)
}

// TestParallel starts several instances concurrently, as tests using
// t.Parallel (and test binaries of different packages) do.
func TestParallel(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{Users: []User{alice}})
			c, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: s.tlsConfig()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			login(t, c, alice)
			appendAndSelect(t, c, "parallel")
			if i%2 == 0 {
				s.Kill()
			}
		})
	}
}

func TestExtraConfig(t *testing.T) {
	s := Start(t, Options{
		Users: []User{alice},
		ExtraConfig: "service imap {\n  client_limit = 10\n}\n" +
			"mail_max_userip_connections = 2\n",
	})
	out, err := exec.Command(dovecotBinary(), "-c", filepath.Join(s.Dir, "dovecot.conf"), "-n").CombinedOutput()
	if err != nil {
		t.Fatalf("dovecot -n: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "client_limit = 10") {
		t.Errorf("ExtraConfig not in effect:\n%s", out)
	}
	// mail_max_userip_connections = 2 overrides the harness's 0.
	var clients []*imapclient.Client
	for range 2 {
		c, err := imapclient.DialInsecure(s.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		login(t, c, alice)
		clients = append(clients, c)
	}
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice.Name, alice.Password).Wait(); err == nil {
		t.Errorf("third login succeeded despite mail_max_userip_connections = 2")
	}
}

func TestInvalidUser(t *testing.T) {
	for _, u := range []User{{Name: ""}, {Name: "a:b"}, {Name: "a b"}, {Name: "a/b"}, {Name: "x", Password: "p:q"}} {
		if err := checkUsers([]User{u}); err == nil {
			t.Errorf("checkUsers(%+v) = nil, want error", u)
		}
	}
	if err := checkUsers([]User{{Name: "Ann"}, {Name: "ann"}}); err == nil {
		t.Errorf("duplicate user names (case-insensitive) accepted")
	}
}

func countGroup(pg int) int {
	n := 0
	for _, p := range listProcs() {
		if p.pgid == pg && !p.zombie() {
			n++
		}
	}
	return n
}

// checkMailProcessUser checks that the instance's imap processes run as
// nobody.
func checkMailProcessUser(t *testing.T, pg int) {
	t.Helper()
	found := false
	for _, p := range listProcs() {
		if p.pgid != pg || !strings.HasSuffix(procTitle(p.pid), "/imap") {
			continue
		}
		found = true
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" && f[1] != "65534" {
				t.Errorf("imap process %d runs as uid %s, want 65534", p.pid, f[1])
			}
		}
	}
	if !found {
		t.Errorf("no imap process found in group %d", pg)
	}
}

// TestRetryOnBindFailure makes the first attempt use a port that is taken:
// Dovecot fails to bind it and Start retries with new ports.
func TestRetryOnBindFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	calls := 0
	orig := pickPorts
	pickPorts = func(n int) ([]int, error) {
		calls++
		ports, err := orig(n)
		if err == nil && calls == 1 {
			ports[1] = busyPort
		}
		return ports, err
	}
	defer func() { pickPorts = orig }()

	s := Start(t, Options{Users: []User{alice}})
	if calls != 2 {
		t.Errorf("picked ports %d times, want 2", calls)
	}
	if s.TLSAddr == busy.Addr().String() {
		t.Errorf("TLSAddr is the busy port")
	}
	if log := s.Log(); !strings.Contains(log, "Address already in use") || !strings.Contains(log, "retrying with new ports") {
		t.Errorf("log does not show the retry:\n%s", log)
	}
	c, err := imapclient.DialTLS(s.TLSAddr, &imapclient.Options{TLSConfig: s.tlsConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	login(t, c, alice)
}

// TestInstanceDiesWithTestBinary checks that an instance does not outlive a
// test binary that is killed (so Cleanup never runs).
func TestInstanceDiesWithTestBinary(t *testing.T) {
	if os.Getenv("DOVECOTTEST_CHILD") != "" {
		s := Start(t, Options{Users: []User{alice}})
		fmt.Printf("READY %d %s\n", s.inst.pid, s.Dir)
		time.Sleep(time.Minute)
		return
	}
	if !Available() {
		t.Skip("dovecot not installed")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstanceDiesWithTestBinary$", "-test.v")
	cmd.Env = append(os.Environ(), "DOVECOTTEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pg, dir := 0, ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "READY %d %s", &pg, &dir); err == nil {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if pg == 0 {
		t.Fatal("child test did not start an instance")
	}
	defer os.RemoveAll(dir)
	deadline := time.Now().Add(10 * time.Second)
	for countGroup(pg) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := countGroup(pg); n > 0 {
		t.Errorf("%d processes of the instance outlived the test binary", n)
		syscall.Kill(-pg, syscall.SIGKILL)
	}
}

// fakeTB records how Start gives up; Skip and Fatal end the goroutine like
// the real ones do. It overrides every method Start uses.
type fakeTB struct {
	testing.TB
	skipped, fataled bool
	msg              string
	cleanups         []func()
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Skip(...any)  { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Fatal(...any) { f.fataled = true; runtime.Goexit() }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fataled, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Cleanup(fn func())   { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Logf(string, ...any) {}
func (f *fakeTB) Failed() bool        { return f.fataled }

func TestMissingDovecot(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	orig := fallbackBinary
	fallbackBinary = "/nonexistent/dovecot"
	defer func() { fallbackBinary = orig }()
	if Available() {
		t.Fatal("Available() with no dovecot binary")
	}
	for _, tc := range []struct {
		ci, require string
		wantFatal   bool
	}{
		{"", "", false},
		{"true", "", true},
		{"", "1", true},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("IMAPEDGE_REQUIRE_DOVECOT", tc.require)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Start(f, Options{})
		}()
		<-done
		if f.fataled != tc.wantFatal || f.skipped == tc.wantFatal {
			t.Errorf("CI=%q IMAPEDGE_REQUIRE_DOVECOT=%q: fatal=%v skipped=%v, want fatal=%v",
				tc.ci, tc.require, f.fataled, f.skipped, tc.wantFatal)
		}
	}
}

// TestBadConfig checks that a configuration error fails the test with
// Dovecot's message, and that nothing is left behind.
func TestBadConfig(t *testing.T) {
	if !Available() {
		t.Skip("dovecot not installed")
	}
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f, Options{ExtraConfig: "no_such_setting = 1\n"})
	}()
	<-done
	if !f.fataled || !strings.Contains(f.msg, "no_such_setting") {
		t.Errorf("Start with a bad config: fatal=%v, message:\n%s", f.fataled, f.msg)
	}
	for _, fn := range f.cleanups {
		fn()
	}
	t.Logf("Start failed with:\n%s", f.msg)
	dir := regexp.MustCompile(`/\S*/dovecottest-[0-9]+`).FindString(f.msg)
	if dir == "" {
		t.Fatalf("no instance directory in the message")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed by the cleanup: %v", dir, err)
	}
}

// TestCAFileWithRealClients checks that CAFile satisfies curl and Python's
// default (strict) TLS verification, by name and by IP address.
func TestCAFileWithRealClients(t *testing.T) {
	s := Start(t, Options{Users: []User{alice}})
	_, port, _ := net.SplitHostPort(s.TLSAddr)
	_, plainPort, _ := net.SplitHostPort(s.Addr)

	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl not installed")
		}
		for _, url := range []string{"imaps://localhost:" + port + "/", "imaps://127.0.0.1:" + port + "/", "imap://localhost:" + plainPort + "/"} {
			cmd := exec.Command("curl", "-sS", "--max-time", "10", "--cacert", s.CAFile, "--ssl-reqd",
				"--resolve", "localhost:"+port+":127.0.0.1", "--resolve", "localhost:"+plainPort+":127.0.0.1",
				"-u", alice.Name+":"+alice.Password, url)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "INBOX") {
				t.Errorf("curl %s: %v\n%s", url, err, out)
			}
		}
	})
	t.Run("python", func(t *testing.T) {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("python3 not installed")
		}
		script := `
import imaplib, ssl, sys
cafile, port, plain, user, pw = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
for host in ("localhost", "127.0.0.1"):
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    m.login(user, pw); m.select("INBOX"); m.logout()
m = imaplib.IMAP4("127.0.0.1", int(plain))
m.starttls(ssl_context=ctx)
m.login(user, pw); m.logout()
print("ok")
`
		out, err := exec.Command("python3", "-c", script, s.CAFile, port, plainPort, alice.Name, alice.Password).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Errorf("python3: %v\n%s", err, out)
		}
	})
}

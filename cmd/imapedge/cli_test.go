package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapedge/imapedge/proxy/dovecottest"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIUsage(t *testing.T) {
	if code, _, e := runCLI(); code != 2 || !strings.Contains(e, "usage: imapedge") {
		t.Fatalf("no args: %d %q", code, e)
	}
	if code, _, e := runCLI("frobnicate"); code != 2 || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %q", code, e)
	}
	if code, _, e := runCLI("check", "-nosuchflag"); code != 2 || !strings.Contains(e, "flag provided but not defined") {
		t.Fatalf("bad flag: %d %q", code, e)
	}
	if code, _, e := runCLI("check", "-config"); code != 2 {
		t.Fatalf("missing flag value: %d %q", code, e)
	}
}

func TestCheckReportsEveryProblemWithItsLine(t *testing.T) {
	f := writeFile(t, "bad.yaml", `listeners:
  - name: imaps
    address: "127.0.0.1:993"
    tls: implict
backends:
  - name: b1
    address: "127.0.0.1:143"
    wieght: 2
policy:
  idle_timeout: 5m
`)
	if code, _, e := runCLI("serve", "-config", f); code != 1 || !strings.Contains(e, "wieght") || !strings.Contains(e, "implict") {
		t.Fatalf("serve must refuse to start and list every problem: exit %d, stderr %q", code, e)
	}
	for _, flagName := range []string{"-config", "--config"} {
		code, _, e := runCLI("check", flagName, f)
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr %q", code, e)
		}
		for _, want := range []string{"bad.yaml:4:", "implict", "bad.yaml:8:", "wieght", "weight", "bad.yaml:10:", "idle_timeout"} {
			if !strings.Contains(e, want) {
				t.Errorf("stderr lacks %q:\n%s", want, e)
			}
		}
	}
}

func TestCheckMissingFiles(t *testing.T) {
	f := writeFile(t, "files.yaml", `listeners:
  - {name: imaps, address: "127.0.0.1:0", tls: implicit}
tls:
  certificates:
    - {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}
backends:
  - {name: b1, address: "127.0.0.1:143"}
`)
	code, _, e := runCLI("check", "-config", f)
	if code != 1 || !strings.Contains(e, "/nonexistent/cert.pem") {
		t.Fatalf("exit %d, stderr %q", code, e)
	}
	if code, _, e := runCLI("serve", "-config", f); code != 1 || !strings.Contains(e, "/nonexistent/cert.pem") {
		t.Fatalf("serve must refuse to start: exit %d, stderr %q", code, e)
	}
	if code, _, e := runCLI("check", "-config", "/nonexistent/proxy.yaml"); code != 1 || !strings.Contains(e, "/nonexistent/proxy.yaml") {
		t.Fatalf("missing config: exit %d, stderr %q", code, e)
	}
}

func TestCheckOKListsNotEnforcedKeys(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := writeSelfSigned(t, dir)
	f := writeFile(t, "ok.yaml", fmt.Sprintf(`listeners:
  - {name: imaps, address: "127.0.0.1:0", tls: implicit}
tls:
  certificates:
    - {cert_file: %s, key_file: %s}
backends:
  - {name: b1, address: "127.0.0.1:143"}
drain:
  spread: 10s
`, cert, key))
	code, o, e := runCLI("check", "-config", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if !strings.Contains(o, "drain.spread: accepted, not enforced yet") || !strings.Contains(o, ": ok") {
		t.Fatalf("stdout %q", o)
	}
}

func TestExampleConfigParses(t *testing.T) {
	// The example references certificate files that only exist on a real
	// host; everything else in it must be valid.
	code, _, e := runCLI("check", "-config", "../../proxy.yaml")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
		if !strings.Contains(l, "cert_file") && !strings.Contains(l, "key_file") && !strings.Contains(l, "file") {
			t.Errorf("unexpected problem in the example: %s", l)
		}
	}
}

// buildBinary compiles imapedge once per test binary.
var builtBinary string

func binary(t *testing.T) string {
	t.Helper()
	if builtBinary != "" {
		return builtBinary
	}
	dir, err := os.MkdirTemp("", "imapedge-bin-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "imapedge")
	if b, err := exec.Command("go", "build", "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	builtBinary = out
	return out
}

var adminRE = regexp.MustCompile(`"msg":"admin listening","address":"([0-9.:]+)"`)

var listenRE = regexp.MustCompile(`"msg":"listening","listener":"(\w+)","address":"([0-9.:]+)"`)

// TestServeBinary runs the real binary: it starts, serves a login through
// to Dovecot, reloads on SIGHUP and exits cleanly on SIGTERM.
func TestServeBinary(t *testing.T) {
	d := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: "bin-user", Password: "Bpw-bin-1"}}})
	dir := t.TempDir()
	cert, key, pool := writeSelfSigned(t, dir)
	cfg := writeFile(t, "serve.yaml", fmt.Sprintf(`listeners:
  - {name: imaps, address: "127.0.0.1:0", tls: implicit}
tls:
  certificates:
    - {cert_file: %s, key_file: %s}
backends:
  - {name: dovecot, address: %q}
log:
  output: stdout
admin:
  address: "127.0.0.1:0"
`, cert, key, d.Addr))
	cmd := exec.Command(binary(t), "serve", "--config", cfg)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitFor := func(what string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("imapedge exited before %q; stderr: %s", what, stderr.String())
				}
				if strings.Contains(l, what) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q in the log", what)
			}
		}
	}
	m := listenRE.FindStringSubmatch(waitFor(`"msg":"listening"`))
	if m == nil {
		t.Fatal("no listening address")
	}
	am := adminRE.FindStringSubmatch(waitFor(`"msg":"admin listening"`))
	if am == nil {
		t.Fatal("no admin address")
	}
	c, err := imapclient.DialTLS(m[2], &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("bin-user", "Bpw-bin-1").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(`"msg":"reloaded"`)
	// The session survives the reload.
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("session lost on reload: %v", err)
	}
	c.Logout().Wait()
	waitFor(`"reason":"logout"`)
	// The admin listener serves the metrics of that session, no token.
	resp, err := http.Get("http://" + am[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `imapedge_logins_total{result="ok"} 1`) ||
		!strings.Contains(string(body), `imapedge_commands_total{command="SELECT",status="OK"} 1`) {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v; stderr %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("imapedge did not exit on SIGTERM")
	}
}

// TestDemoBinary runs `imapedge demo` and logs in as every demo user over
// implicit TLS and over plaintext (allowed from loopback in the demo).
func TestDemoBinary(t *testing.T) {
	cmd := exec.Command(binary(t), "demo", "-addr", "127.0.0.1:0", "-tls-addr", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	defer func() {
		if t.Failed() {
			t.Logf("demo stderr:\n%s", stderr.String())
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	var plainAddr, tlsAddr string
	for sc.Scan() {
		l := sc.Text()
		for _, f := range strings.Fields(l) {
			if !strings.HasPrefix(f, "127.0.0.1:") {
				continue
			}
			switch {
			case strings.HasPrefix(l, "  IMAP,"):
				plainAddr = f
			case strings.HasPrefix(l, "  IMAPS,"):
				tlsAddr = f
			}
		}
		if strings.HasPrefix(l, "Press Ctrl-C") {
			break
		}
	}
	if plainAddr == "" || tlsAddr == "" {
		t.Fatalf("demo did not print its addresses (%q, %q)", plainAddr, tlsAddr)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	for _, u := range demoUsers {
		c, err := imapclient.DialTLS(tlsAddr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(u.name, u.password).Wait(); err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil || sel.NumMessages != 1 {
			t.Fatalf("%s: select: %v %+v", u.name, err, sel)
		}
		c.Logout().Wait()
		c.Close()
		p, err := imapclient.DialInsecure(plainAddr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Login(u.name, u.password).Wait(); err != nil {
			t.Fatalf("%s plaintext: %v", u.name, err)
		}
		p.Logout().Wait()
		p.Close()
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exit: %v", err)
	}
}

package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imapedge/imapedge/proxy/dovecottest"
)

// Fronts: every target is measured through its plaintext and its
// implicit-TLS listener.
const (
	frontPlain = "plain"
	frontTLS   = "tls"
)

// Target names, in table order.
const (
	tDirect   = "direct"
	tHAProxy  = "haproxy"
	tNginx    = "nginx"
	tImapedge = "imapedge"
)

// target is something the load generator connects to: Dovecot itself or a
// proxy in front of it.
type target struct {
	name  string
	addrs map[string]string // front -> "127.0.0.1:PORT"
	pgid  int               // the proxy's process group; 0 for direct
	proc  *child            // nil for direct
	// start starts the proxy anew (a new process, perhaps new ports);
	// nil for direct.
	start func() (*target, error)
}

func (t *target) addr(front string) string { return t.addrs[front] }

// stop stops the proxy, if any.
func (t *target) stop() {
	if t.proc != nil {
		t.proc.stop()
	}
}

// restart replaces the proxy process by a fresh one, so that memory it
// kept from earlier runs does not hide what new sessions cost.
func (t *target) restart() error {
	if t.start == nil {
		return nil
	}
	t.stop()
	nt, err := t.start()
	if err != nil {
		return err
	}
	t.proc, t.pgid, t.addrs = nt.proc, nt.pgid, nt.addrs
	return nil
}

// child is a process started by the benchmark in its own process group.
type child struct {
	name     string
	pid      int // also the process group id
	out      string
	outStart int64 // size of out before this process
	exited   chan struct{}
	waitErr  error
}

// startChild starts bin in a new process group with stdout and stderr
// going to outPath. The process gets SIGKILL if the benchmark dies
// (PR_SET_PDEATHSIG, which fires when the forking thread exits: the thread
// stays locked to a goroutine that waits for the child).
func startChild(name, outPath string, env []string, bin string, args ...string) (*child, error) {
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, out: outPath, outStart: fileSize(outPath), exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(bin, args...)
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		err := cmd.Start()
		out.Close()
		if err != nil {
			started <- err
			return
		}
		c.pid = cmd.Process.Pid
		reaper.addGroup(c.pid)
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return c, nil
}

func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// output returns the last lines the child wrote.
func (c *child) output() string { return tailFile(c.out, c.outStart, 30) }

// stop sends SIGTERM to the child's process group, waits up to 3 s, then
// kills the group and waits until it is gone.
func (c *child) stop() {
	if c == nil || c.pid <= 0 {
		return
	}
	if c.alive() {
		_ = syscall.Kill(-c.pid, syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(3 * time.Second):
		}
	}
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
	}
	// Workers (nginx) may outlive the master for a moment.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if len(groupProcs(c.pid)) == 0 {
			break
		}
		_ = syscall.Kill(-c.pid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
	reaper.removeGroup(c.pid)
}

// childEnv is the environment for the proxies: ours, with GOMAXPROCS=1 for
// imapedge so that every proxy runs one thread of execution, like HAProxy
// (nbthread 1) and nginx (worker_processes 1) here.
// BENCH_PROXY_GOMAXPROCS sets another value; "default" leaves the Go
// runtime's choice (one per core).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			continue
		}
		env = append(env, kv)
	}
	if v := proxyGOMAXPROCS(); v != "default" {
		env = append(env, "GOMAXPROCS="+v)
	}
	return env
}

// proxyGOMAXPROCS is imapedge's GOMAXPROCS in the benchmark (see childEnv).
func proxyGOMAXPROCS() string {
	if v := os.Getenv("BENCH_PROXY_GOMAXPROCS"); v != "" {
		return v
	}
	return "1"
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// waitReady polls both fronts of t until each greets (TLS front: after the
// handshake), the child exits or timeout passes.
func waitReady(t *target, tlsConf *tls.Config, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, front := range []string{frontPlain, frontTLS} {
		var conf *tls.Config
		if front == frontTLS {
			conf = tlsConf
		}
		for {
			if t.proc != nil && !t.proc.alive() {
				return fmt.Errorf("%s exited during start-up (%v)", t.name, t.proc.waitErr)
			}
			c, err := openIMAP(t.addr(front), conf, 4096, 2*time.Second)
			if err == nil {
				c.Logout()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s %s front (%s) not ready after %v: %w", t.name, front, t.addr(front), timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// startWithPorts runs start with fresh ports until the ports could be bound
// (up to 5 attempts: picking free ports and binding them later is racy).
func startWithPorts(name string, start func(ports []int) (*target, bool, error)) (*target, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		ports, err := dovecottest.FreePorts(2)
		if err != nil {
			return nil, err
		}
		t, portClash, err := start(ports)
		if err == nil {
			return t, nil
		}
		lastErr = err
		if !portClash {
			break
		}
	}
	return nil, fmt.Errorf("%s: %w", name, lastErr)
}

func addrInUse(text string) bool {
	return strings.Contains(text, "Address already in use") || strings.Contains(text, "address already in use")
}

// tls13Suites puts AES-128-GCM first for HAProxy, which otherwise picks
// AES-256-GCM while Dovecot, nginx and imapedge pick AES-128-GCM.
const tls13Suites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

// startHAProxy runs HAProxy 2.6 in TCP mode, one thread, in the foreground.
func startHAProxy(dir, backend string, cert certFiles, tlsConf *tls.Config) (*target, error) {
	return startWithPorts(tHAProxy, func(ports []int) (*target, bool, error) {
		cfg := filepath.Join(dir, "haproxy.cfg")
		// Global maxconn is left to HAProxy: it derives it from the fd
		// limit (20000 gives about 9,990 connections). A global maxconn of
		// 30000 would need 60,000 fds and HAProxy refuses to start.
		text := fmt.Sprintf(`global
    nbthread 1

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend plain
    bind 127.0.0.1:%d
    maxconn 30000
    default_backend dovecot

frontend tls
    bind 127.0.0.1:%d ssl crt %s ciphersuites %s
    maxconn 30000
    default_backend dovecot

backend dovecot
    server dovecot %s
`, ports[0], ports[1], cert.combined, tls13Suites, backend)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return nil, false, err
		}
		if out, err := exec.Command("haproxy", "-c", "-f", cfg).CombinedOutput(); err != nil {
			return nil, false, fmt.Errorf("haproxy -c -f %s: %v\n%s", cfg, err, out)
		}
		out := filepath.Join(dir, "haproxy.out")
		c, err := startChild(tHAProxy, out, childEnv(), "haproxy", "-f", cfg, "-db")
		if err != nil {
			return nil, false, err
		}
		t := &target{name: tHAProxy, proc: c, pgid: c.pid,
			addrs: map[string]string{frontPlain: hostPort(ports[0]), frontTLS: hostPort(ports[1])}}
		if err := waitReady(t, tlsConf, 10*time.Second); err != nil {
			c.stop()
			log := c.output()
			return nil, addrInUse(log), fmt.Errorf("%w\n%s", err, log)
		}
		return t, false, nil
	})
}

// nginxModule finds the mail module shipped by libnginx-mod-mail.
func nginxModule() (string, error) {
	for _, dir := range []string{"/usr/lib/nginx/modules", "/usr/share/nginx/modules"} {
		p := filepath.Join(dir, "ngx_mail_module.so")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/nginx/modules/*mail*.so")
	if len(matches) > 0 {
		return matches[0], nil
	}
	return "", errors.New("ngx_mail_module.so not found under /usr/lib/nginx/modules (install libnginx-mod-mail)")
}

// startNginx runs nginx's mail proxy (one worker) with auth_http pointing
// at authAddr.
func startNginx(dir, authAddr string, cert certFiles, tlsConf *tls.Config) (*target, error) {
	module, err := nginxModule()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Join(dir, "nginx") + "/"
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return nil, err
	}
	return startWithPorts(tNginx, func(ports []int) (*target, bool, error) {
		cfg := filepath.Join(prefix, "nginx.conf")
		errLog := filepath.Join(prefix, "error.log")
		// ssl_protocols: nginx 1.22's default lacks TLSv1.3, which every
		// other target negotiates.
		text := fmt.Sprintf(`load_module %s;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %snginx.pid;
error_log %s warn;

events {
    worker_connections 19000;
}

mail {
    server_name localhost;
    auth_http %s/auth;
    proxy_pass_error_message on;
    imap_capabilities IMAP4rev1 IDLE LITERAL+;

    server {
        listen 127.0.0.1:%d;
        protocol imap;
    }
    server {
        listen 127.0.0.1:%d ssl;
        protocol imap;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
    }
}
`, module, prefix, errLog, authAddr, ports[0], ports[1], cert.cert, cert.key)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return nil, false, err
		}
		if out, err := exec.Command("nginx", "-t", "-c", cfg, "-p", prefix, "-e", errLog).CombinedOutput(); err != nil {
			return nil, false, fmt.Errorf("nginx -t -c %s: %v\n%s", cfg, err, out)
		}
		out := filepath.Join(dir, "nginx.out")
		errStart := fileSize(errLog)
		c, err := startChild(tNginx, out, childEnv(), "nginx", "-c", cfg, "-p", prefix, "-e", errLog)
		if err != nil {
			return nil, false, err
		}
		t := &target{name: tNginx, proc: c, pgid: c.pid,
			addrs: map[string]string{frontPlain: hostPort(ports[0]), frontTLS: hostPort(ports[1])}}
		if err := waitReady(t, tlsConf, 10*time.Second); err != nil {
			c.stop()
			log := c.output() + tailFile(errLog, errStart, 30)
			return nil, addrInUse(log), fmt.Errorf("%w\n%s", err, log)
		}
		return t, false, nil
	})
}

// startImapedge runs `imapedge serve` with a plaintext and an implicit-TLS
// listener on port 0, inspection and audit on, and learns the ports from
// its log.
func startImapedge(dir, bin, backend string, cert certFiles, tlsConf *tls.Config) (*target, error) {
	cfg := filepath.Join(dir, "imapedge.yaml")
	logPath := filepath.Join(dir, "imapedge.log")
	text := fmt.Sprintf(`listeners:
  - {name: plain, address: "127.0.0.1:0", tls: none}
  - {name: tls, address: "127.0.0.1:0", tls: implicit}
tls:
  certificates:
    - {cert_file: %q, key_file: %q}
backends:
  - {name: dovecot, address: %q}
policy:
  plaintext_auth_networks: ["127.0.0.0/8"]
audit: {commands: true, output: %q}
log: {output: %q}
`, cert.cert, cert.key, backend, filepath.Join(dir, "audit.log"), logPath)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "check", "-config", cfg).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("imapedge check -config %s: %v\n%s", cfg, err, out)
	}
	logStart := fileSize(logPath)
	c, err := startChild(tImapedge, filepath.Join(dir, "imapedge.out"), childEnv(), bin, "serve", "-config", cfg)
	if err != nil {
		return nil, err
	}
	addrs, err := imapedgeListeners(c, logPath, logStart, 15*time.Second)
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("imapedge: %w\n%s%s", err, c.output(), tailFile(logPath, logStart, 20))
	}
	t := &target{name: tImapedge, proc: c, pgid: c.pid, addrs: addrs}
	if err := waitReady(t, tlsConf, 10*time.Second); err != nil {
		c.stop()
		return nil, fmt.Errorf("%w\n%s%s", err, c.output(), tailFile(logPath, logStart, 20))
	}
	return t, nil
}

// imapedgeListeners polls imapedge's JSON log, from offset on, for the
// "listening" lines of both listeners.
func imapedgeListeners(c *child, logPath string, offset int64, timeout time.Duration) (map[string]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		addrs := map[string]string{}
		if f, err := os.Open(logPath); err == nil {
			f.Seek(offset, io.SeekStart)
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				var ev struct {
					Msg      string `json:"msg"`
					Listener string `json:"listener"`
					Address  string `json:"address"`
				}
				if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Msg == "listening" && ev.Address != "" {
					addrs[ev.Listener] = ev.Address
				}
			}
			f.Close()
		}
		if addrs[frontPlain] != "" && addrs[frontTLS] != "" {
			return map[string]string{frontPlain: addrs[frontPlain], frontTLS: addrs[frontTLS]}, nil
		}
		if !c.alive() {
			return nil, fmt.Errorf("exited during start-up (%v)", c.waitErr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no \"listening\" lines for both listeners in %s after %v", logPath, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tailFile returns the last n lines of a file after offset, for error
// messages.
func tailFile(path string, offset int64, n int) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) <= offset {
		return ""
	}
	data = data[offset:]
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("==> %s <==\n%s\n", filepath.Base(path), strings.Join(lines, ""))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

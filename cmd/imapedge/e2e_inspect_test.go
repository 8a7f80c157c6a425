package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// auditEvent is one line of the audit stream.
type auditEvent map[string]any

func (env *e2eEnv) auditEvents(t *testing.T) []auditEvent {
	t.Helper()
	var out []auditEvent
	sc := bufio.NewScanner(strings.NewReader(env.audit.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// waitAudit flushes the audit stream until n events of kind event are
// there.
func (env *e2eEnv) waitAudit(t *testing.T, event string, n int) []auditEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []auditEvent
		for _, e := range env.auditEvents(t) {
			if e["event"] == event {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d %s audit events, got %d:\n%s", n, event, len(got), env.audit.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bodyOf(size int, subject string) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nSubject: " + subject + "\r\n\r\n")
	for b.Len() < size-2 {
		// Lines that look like tagged responses must not confuse the
		// inspector: they are inside literals.
		b.WriteString("a5 OK this line is message content, not a response\r\n")
	}
	s := b.String()[:size-2]
	return s + "\r\n"
}

// TestE2EAuditEvents drives a scripted session through imapedge to a real
// Dovecot and checks the exact sequence of audit events.
func TestE2EAuditEvents(t *testing.T) {
	env := startE2EWith(t, e2eOptions{extraYAML: "audit:\n  commands: true\n"})
	const user = "backend-tls"
	c := dialE2E(t, env.addr("imaps"), env.caPool)
	big := bodyOf(1<<20, "audit big")
	small := bodyOf(300, "audit small")
	c.expect("* OK")
	c.send("a1 LOGIN " + user + " " + e2ePassword(user) + "\r\n")
	c.until("a1 OK")
	c.send("a2 CREATE {7}\r\n")
	c.expect("+")
	c.send("Archive\r\n")
	c.until("a2 OK")
	c.send("a3 SELECT INBOX\r\n")
	c.until("a3 OK")
	c.send(fmt.Sprintf("a4 APPEND INBOX {%d}\r\n", len(big)))
	c.expect("+")
	c.send(big + "\r\n")
	c.until("a4 OK")
	c.send(fmt.Sprintf("a5 APPEND \"INBOX\" (\\Seen) {%d+}\r\n%s\r\n", len(small), small))
	c.until("a5 OK")
	c.send("a6 FETCH 1:2 (BODY.PEEK[])\r\n")
	c.until("a6 OK")
	c.send("a7 UID SEARCH SUBJECT \"audit\"\r\n")
	c.until("a7 OK")
	c.send("a8 IDLE\r\n")
	c.expect("+")
	// A second session (not through the proxy) adds a message.
	other := dialE2E(t, env.dovecot.TLSAddr, env.dovecot.CAPool)
	other.expect("* OK")
	other.send("b1 LOGIN " + user + " " + e2ePassword(user) + "\r\nb2 APPEND INBOX {5}\r\n")
	other.until("+")
	other.send("hello\r\nb3 LOGOUT\r\n")
	other.until("b3 OK")
	c.until("* 3 EXISTS")
	c.send("DONE\r\n")
	c.until("a8 OK")
	c.send("a9 UID COPY 1 Archive\r\n")
	c.until("a9 OK")
	c.send("a10 RENAME Archive \"Entw&APw-rfe\"\r\n")
	c.until("a10 OK")
	c.send("a11 SELECT nonexistent\r\n")
	a11 := c.until("a11 NO")
	c.send("a12 NOOP\r\na12 NOOP\r\n") // tags may repeat
	c.until("a12 OK")
	c.until("a12 OK")
	c.send("a13 LOGOUT\r\n")
	c.until("a13 OK")
	c.expectEOF()

	events := env.waitAudit(t, "command", 13)
	type want struct {
		tag, command, mailbox, mailboxTo, selected, status string
		literal                                            int
		untaggedMin, untaggedMax                           int
	}
	wants := []want{
		{"a2", "CREATE", "Archive", "", "", "OK", 7, 0, 0},
		{"a3", "SELECT", "INBOX", "", "", "OK", 0, 4, 10},
		{"a4", "APPEND", "INBOX", "", "INBOX", "OK", len(big), 0, 2},
		{"a5", "APPEND", "INBOX", "", "INBOX", "OK", len(small), 0, 2},
		{"a6", "FETCH", "", "", "INBOX", "OK", 0, 2, 2},
		{"a7", "UID SEARCH", "", "", "INBOX", "OK", 0, 1, 1},
		{"a8", "IDLE", "", "", "INBOX", "OK", 0, 1, 3},
		{"a9", "UID COPY", "Archive", "", "INBOX", "OK", 0, 0, 0},
		{"a10", "RENAME", "Archive", "Entwürfe", "INBOX", "OK", 0, 0, 0},
		{"a11", "SELECT", "nonexistent", "", "INBOX", "NO", 0, 0, 1},
		{"a12", "NOOP", "", "", "", "OK", 0, 0, 0},
		{"a12", "NOOP", "", "", "", "OK", 0, 0, 0},
		{"a13", "LOGOUT", "", "", "", "OK", 0, 1, 1},
	}
	if len(events) != len(wants) {
		t.Fatalf("got %d command events, want %d:\n%s", len(events), len(wants), env.audit.String())
	}
	for i, w := range wants {
		e := events[i]
		get := func(k string) string { s, _ := e[k].(string); return s }
		num := func(k string) int { f, _ := e[k].(float64); return int(f) }
		if get("tag") != w.tag || get("command") != w.command || get("mailbox") != w.mailbox || get("mailbox_to") != w.mailboxTo ||
			get("selected") != w.selected || get("status") != w.status || num("literal_bytes") != w.literal ||
			num("untagged") < w.untaggedMin || num("untagged") > w.untaggedMax {
			t.Errorf("event %d: got %v\nwant %+v", i, e, w)
		}
		if get("user") != user || get("backend") != "dovecot1" || get("client_ip") != "127.0.0.1" || get("session") == "" {
			t.Errorf("event %d lacks session fields: %v", i, e)
		}
		if _, ok := e["duration_ms"].(float64); !ok {
			t.Errorf("event %d has no duration_ms: %v", i, e)
		}
	}
	// Byte counts: the client's bytes of the APPEND are its line and the
	// literal; the FETCH's bytes out include both bodies.
	num := func(e auditEvent, k string) int { f, _ := e[k].(float64); return int(f) }
	if got, want := num(events[2], "bytes_in"), len(fmt.Sprintf("a4 APPEND INBOX {%d}\r\n", len(big)))+len(big)+2; got != want {
		t.Errorf("APPEND bytes_in = %d, want %d", got, want)
	}
	if got := num(events[4], "bytes_out"); got < len(big)+len(small) {
		t.Errorf("FETCH bytes_out = %d, want at least %d", got, len(big)+len(small))
	}
	if got := num(events[4], "bytes_in"); got != len("a6 FETCH 1:2 (BODY.PEEK[])\r\n") {
		t.Errorf("FETCH bytes_in = %d", got)
	}
	if code, _ := events[1]["code"].(string); code != "READ-WRITE" {
		t.Errorf("SELECT code = %q, want READ-WRITE", code)
	}
	if code, _ := events[9]["code"].(string); code != "" {
		t.Errorf("SELECT nonexistent code = %q, want none (%s)", code, a11)
	}
	if got := num(events[6], "bytes_in"); got != len("a8 IDLE\r\nDONE\r\n") {
		t.Errorf("IDLE bytes_in = %d", got)
	}
	// Session events, with the end reason.
	starts := env.waitAudit(t, "session_start", 1)
	ends := env.waitAudit(t, "session_end", 1)
	if starts[0]["tls"] != "TLS 1.3" || ends[0]["reason"] != "logout" || ends[0]["user"] != user {
		t.Errorf("session events: %v %v", starts[0], ends[0])
	}
	// Never any message content or password in the audit stream.
	a := env.audit.String()
	if strings.Contains(a, "message content") || strings.Contains(a, e2ePassword(user)) {
		t.Fatal("audit stream contains message content or a password")
	}
}

// TestE2EMetrics reads /metrics after a session and finds its counts.
func TestE2EMetrics(t *testing.T) {
	env := startE2E(t, plainBackend)
	hs := httptest.NewServer(env.rt.srv.AdminHandler())
	defer hs.Close()
	const user = "curl-user"
	c := dialE2E(t, env.addr("imaps"), env.caPool)
	c.expect("* OK")
	c.send("a1 LOGIN " + user + " wrong-password\r\n")
	c.until("a1 NO")
	c.send("a2 LOGIN " + user + " " + e2ePassword(user) + "\r\n")
	c.until("a2 OK")
	c.send("a3 SELECT INBOX\r\na4 NOOP\r\na5 NOOP\r\na6 FETCH 1 BODY[]\r\n")
	// Dovecot may answer the BAD before the NOOPs: wait for all four.
	for seen := map[string]bool{}; len(seen) < 4; {
		l := c.line()
		if tag, _, _ := strings.Cut(l, " "); tag >= "a3" && tag <= "a6" {
			seen[tag] = true
		}
	}
	c.send("a7 IDLE\r\n")
	c.expect("+")
	c.send("DONE\r\n")
	c.until("a7 OK")
	c.send("a8 LOGOUT\r\n")
	c.until("a8 OK")
	c.expectEOF()
	env.waitLog(t, `"reason":"logout"`, 1)
	get := func(path string) string {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b)
	}
	m := get("/metrics")
	for _, want := range []string{
		`imapedge_commands_total{command="SELECT",status="OK"} 1`,
		`imapedge_commands_total{command="NOOP",status="OK"} 2`,
		`imapedge_commands_total{command="FETCH",status="BAD"} 1`,
		`imapedge_commands_total{command="LOGOUT",status="OK"} 1`,
		`imapedge_commands_total{command="IDLE",status="OK"} 1`,
		`imapedge_command_duration_seconds_count{command="NOOP"} 2`,
		`imapedge_idle_duration_seconds_count 1`,
		`imapedge_logins_total{result="ok"} 1`,
		`imapedge_logins_total{result="auth_failed"} 1`,
		`imapedge_connections_total{listener="imaps"} 1`,
		`imapedge_sessions_active{backend="dovecot1"} 0`,
		`imapedge_backend_up{backend="dovecot1"} 1`,
		`imapedge_inspection_lost_total 0`,
		`imapedge_panics_total 0`,
		`imapedge_bytes_total{direction="in"}`,
		`imapedge_backend_dial_seconds_count{backend="dovecot1"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(m, `command_duration_seconds_count{command="IDLE"}`) {
		t.Error("IDLE must not be in the command latency histogram")
	}
	if get("/healthz") != "ok\n" || get("/readyz") != "ready\n" {
		t.Error("healthz/readyz")
	}
}

// TestE2ECompressTerminated: Dovecot offers COMPRESS=DEFLATE (imap_zlib);
// imapedge keeps it advertised, answers COMPRESS itself, compresses the
// client leg and still records every command. Python's zlib is the client.
func TestE2ECompressTerminated(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 not installed")
	}
	zlibConf := "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n"
	for _, mode := range []string{"terminate", "strip"} {
		t.Run(mode, func(t *testing.T) {
			env := startE2EWith(t, e2eOptions{extraYAML: "audit:\n  commands: true\n", dovecotConfig: zlibConf, compress: mode})
			host, port, _ := strings.Cut(env.addr("imaps"), ":")
			cmd := exec.Command(py, "testdata/compress_client.py", host, port, "proxy-tls-py", env.certFile)
			cmd.Env = append(os.Environ(), "E2E_PASSWORD="+e2ePassword("proxy-tls-py"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("compress client: %v\n%s", err, out)
			}
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if mode == "terminate" {
				if res["advertised"] != true || res["compress"] != "OK" || res["fetched"] != "hello compressed world" || res["logout"] != "OK" {
					t.Fatalf("terminate: %v", res)
				}
				// Commands sent compressed are still inspected.
				env.waitAudit(t, "command", 4)
				var names []string
				for _, e := range env.auditEvents(t) {
					if e["event"] == "command" {
						names = append(names, e["command"].(string)+" "+e["status"].(string))
					}
				}
				if strings.Join(names, ",") != "COMPRESS OK,APPEND OK,SELECT OK,FETCH OK,LOGOUT OK" {
					t.Fatalf("audit commands: %v", names)
				}
			} else {
				if res["advertised"] != false || res["compress"] != "NO" || res["fetched"] != "hello compressed world" {
					t.Fatalf("strip: %v", res)
				}
			}
		})
	}
}

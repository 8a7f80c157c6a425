package proxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// step is one move of a transcript: send text, or expect a line that
// starts with a prefix, or expect the connection to close.
type step struct {
	send   string
	expect string
	eof    bool
	until  bool // skip lines until one starts with expect
}

func send(s string) step   { return step{send: s} }
func expect(s string) step { return step{expect: s} }
func until(s string) step  { return step{expect: s, until: true} }

var closed = step{eof: true}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func runTranscript(t *testing.T, c *rawClient, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch {
		case s.send != "":
			c.send(s.send)
		case s.eof:
			c.expectEOF()
		case s.until:
			for l := c.line(); !strings.HasPrefix(l, s.expect); l = c.line() {
			}
		default:
			l := c.line()
			if !strings.HasPrefix(l, s.expect) {
				t.Fatalf("step %d: got %q, want prefix %q", i, l, s.expect)
			}
		}
	}
}

const (
	capsTLS       = "* OK [CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR AUTH=PLAIN AUTH=LOGIN] imapedge ready"
	capsStartTLS  = "* OK [CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR STARTTLS LOGINDISABLED] imapedge ready"
	capsPlainOnly = "* OK [CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR LOGINDISABLED] imapedge ready"
)

func TestPreauthTranscripts(t *testing.T) {
	be := startMemBackend(t, map[string]string{"alice": "s3cret", "bob": "pa ss\"w\\d", "empty": ""})
	p := startProxy(t, memBackends(be.addr))
	cases := []struct {
		name     string
		listener string
		steps    []step
	}{
		{"greeting implicit TLS", "imaps", []step{expect(capsTLS)}},
		{"greeting plaintext before STARTTLS", "imap", []step{expect(capsStartTLS)}},
		{"greeting plaintext listener", "plain", []step{expect(capsPlainOnly)}},
		{"capability", "imaps", []step{expect("* OK"), send("c1 CAPABILITY\r\n"),
			expect("* CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR AUTH=PLAIN AUTH=LOGIN"), expect("c1 OK")}},
		{"capability lower case", "imaps", []step{expect("* OK"), send("c1 capability\r\n"), expect("* CAPABILITY"), expect("c1 OK")}},
		{"noop", "imaps", []step{expect("* OK"), send("n NOOP\r\n"), expect("n OK")}},
		{"logout", "imaps", []step{expect("* OK"), send("l LOGOUT\r\n"), expect("* BYE"), expect("l OK"), closed}},
		{"enable ignored", "imaps", []step{expect("* OK"), send("e ENABLE IMAP4rev2\r\n"), expect("e OK ENABLE ignored")}},
		{"id nil", "imaps", []step{expect("* OK"), send("i ID NIL\r\n"), expect(`* ID ("name" "imapedge")`), expect("i OK")}},
		{"id quoted", "imaps", []step{expect("* OK"), send("i ID (\"name\" \"Thunderbird\" \"version\" \"128.0\")\r\n"), expect("* ID"), expect("i OK")}},
		{"id sync literal", "imaps", []step{expect("* OK"), send("i ID (\"name\" {11}\r\n"), expect("+ "),
			send("Outlook App \"version\" NIL)\r\n"), expect("* ID"), expect("i OK")}},
		{"id non-sync literal", "imaps", []step{expect("* OK"), send("i ID (\"name\" {11+}\r\nOutlook App \"x-originating-ip\" \"1.2.3.4\")\r\n"), expect("* ID"), expect("i OK")}},
		{"id malformed", "imaps", []step{expect("* OK"), send("i ID (\"name\")\r\n"), expect("i BAD")}},
		{"unknown command", "imaps", []step{expect("* OK"), send("x SELECT INBOX\r\n"), expect("x BAD")}},
		{"three bad commands end the connection", "imaps", []step{expect("* OK"),
			send("x1 FOO\r\n"), expect("x1 BAD"), send("x2 BAR\r\n"), expect("x2 BAD"),
			send("x3 BAZ\r\n"), expect("x3 BAD"), expect("* BYE"), closed}},
		{"invalid tag", "imaps", []step{expect("* OK"), send("* LOGIN a b\r\n"), expect("* BAD")}},
		{"missing command", "imaps", []step{expect("* OK"), send("a1\r\n"), expect("a1 BAD")}},
		{"http request", "imap", []step{expect("* OK"), send("GET / HTTP/1.1\r\n"), expect("* BYE"), closed}},
		{"tls on the plaintext port", "imap", []step{expect("* OK"), send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"), expect("* BYE"), closed}},
		{"starttls on implicit tls", "imaps", []step{expect("* OK"), send("s STARTTLS\r\n"), expect("s BAD")}},
		{"starttls on a plain listener", "plain", []step{expect("* OK"), send("s STARTTLS\r\n"), expect("s BAD")}},

		{"login refused without tls", "imap", []step{expect("* OK"), send("a LOGIN alice s3cret\r\n"), expect("a NO [PRIVACYREQUIRED]")}},
		{"login literal refused without tls before +", "imap", []step{expect("* OK"), send("a LOGIN {5}\r\n"), expect("a NO [PRIVACYREQUIRED]"),
			send("n NOOP\r\n"), expect("n OK")}},
		{"login non-sync literal refused without tls", "imap", []step{expect("* OK"), send("a LOGIN {5+}\r\nalice {6+}\r\ns3cret\r\n"), expect("a NO [PRIVACYREQUIRED]"),
			send("n NOOP\r\n"), expect("n OK")}},
		{"authenticate refused without tls", "plain", []step{expect("* OK"), send("a AUTHENTICATE PLAIN " + b64("\x00alice\x00s3cret") + "\r\n"), expect("a NO [PRIVACYREQUIRED]")}},

		{"login atoms", "imaps", []step{expect("* OK"), send("a LOGIN alice s3cret\r\n"), expect("a OK [CAPABILITY IMAP4rev2 IMAP4rev1 LITERAL- ")}},
		{"login quoted with escapes", "imaps", []step{expect("* OK"), send("a LOGIN \"bob\" \"pa ss\\\"w\\\\d\"\r\n"), expect("a OK [CAPABILITY")}},
		{"login sync literals", "imaps", []step{expect("* OK"), send("a LOGIN {5}\r\n"), expect("+ "), send("alice {6}\r\n"), expect("+ "),
			send("s3cret\r\n"), expect("a OK [CAPABILITY")}},
		{"login non-sync literals", "imaps", []step{expect("* OK"), send("a LOGIN {5+}\r\nalice {6+}\r\ns3cret\r\n"), expect("a OK [CAPABILITY")}},
		{"login empty literal password", "imaps", []step{expect("* OK"), send("a LOGIN alice {0}\r\n"), expect("+ "), send("\r\n"), expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")}},
		{"login wrong password then retry", "imaps", []step{expect("* OK"), send("a LOGIN alice wrong\r\n"), expect("a NO [AUTHENTICATIONFAILED] Authentication failed."),
			send("b LOGIN alice s3cret\r\n"), expect("b OK [CAPABILITY")}},
		{"login unknown user looks like a wrong password", "imaps", []step{expect("* OK"), send("a LOGIN nobody@x wrong\r\n"), expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")}},
		{"login missing password", "imaps", []step{expect("* OK"), send("a LOGIN alice\r\n"), expect("a BAD")}},
		{"login bad quoting", "imaps", []step{expect("* OK"), send("a LOGIN \"alice s3cret\r\n"), expect("a BAD")}},
		{"login pipelined select", "imaps", []step{expect("* OK"), send("a LOGIN alice s3cret\r\nb SELECT INBOX\r\n"), expect("a OK [CAPABILITY"), until("b OK")}},
		{"untagged capability when asked before login", "imaps", []step{expect("* OK"), send("c CAPABILITY\r\n"), expect("* CAPABILITY"), expect("c OK"),
			send("a LOGIN alice s3cret\r\n"), expect("* CAPABILITY IMAP4rev2 IMAP4rev1"), expect("a OK [CAPABILITY IMAP4rev2 IMAP4rev1")}},

		{"authenticate plain with initial response", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN " + b64("\x00alice\x00s3cret") + "\r\n"), expect("a OK [CAPABILITY")}},
		{"authenticate plain with authzid", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN " + b64("alice\x00alice\x00s3cret") + "\r\n"), expect("a OK [CAPABILITY")}},
		{"authenticate plain without initial response", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN\r\n"), expect("+ "),
			send(b64("\x00alice\x00s3cret") + "\r\n"), expect("a OK [CAPABILITY")}},
		{"authenticate plain wrong password", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN " + b64("\x00alice\x00nope") + "\r\n"), expect("a NO [AUTHENTICATIONFAILED] Authentication failed.")}},
		{"authenticate cancel", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN\r\n"), expect("+ "), send("*\r\n"), expect("a BAD"),
			send("n NOOP\r\n"), expect("n OK")}},
		{"authenticate invalid base64", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN !!!!\r\n"), expect("a BAD")}},
		{"authenticate plain empty initial response", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN =\r\n"), expect("a BAD")}},
		{"authenticate plain malformed message", "imaps", []step{expect("* OK"), send("a AUTHENTICATE PLAIN " + b64("alice s3cret") + "\r\n"), expect("a BAD")}},
		{"authenticate login", "imaps", []step{expect("* OK"), send("a AUTHENTICATE LOGIN\r\n"), expect("+ " + b64("Username:")),
			send(b64("alice") + "\r\n"), expect("+ " + b64("Password:")), send(b64("s3cret") + "\r\n"), expect("a OK [CAPABILITY")}},
		{"authenticate login with initial response", "imaps", []step{expect("* OK"), send("a AUTHENTICATE LOGIN " + b64("alice") + "\r\n"), expect("+ " + b64("Password:")),
			send(b64("s3cret") + "\r\n"), expect("a OK [CAPABILITY")}},
		{"authenticate unsupported mechanism", "imaps", []step{expect("* OK"), send("a AUTHENTICATE CRAM-MD5\r\n"), expect("a NO")}},
		{"authenticate no mechanism", "imaps", []step{expect("* OK"), send("a AUTHENTICATE\r\n"), expect("a BAD")}},

		{"line too long", "imaps", []step{expect("* OK"), send("a NOOP " + strings.Repeat("x", 17<<10) + "\r\n"), expect("a BAD Line too long"),
			send("n NOOP\r\n"), expect("n OK")}},
		{"sync literal too big", "imaps", []step{expect("* OK"), send("a LOGIN {9000}\r\n"), expect("a BAD [TOOBIG]"), send("n NOOP\r\n"), expect("n OK")}},
		{"non-sync literal over 4096", "imaps", []step{expect("* OK"), send("a LOGIN {5000+}\r\n"), expect("a BAD [TOOBIG]"), expect("* BYE"), closed}},
		{"literal in another command", "imaps", []step{expect("* OK"), send("a NOOP {5}\r\n"), expect("a BAD"), send("n NOOP\r\n"), expect("n OK")}},
		{"huge literal count", "imaps", []step{expect("* OK"), send("a LOGIN {99999999999999999999}\r\n"), expect("a BAD")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := p.dial(t, tc.listener)
			runTranscript(t, c, tc.steps)
		})
	}
}

func TestStartTLSThenLogin(t *testing.T) {
	be := startMemBackend(t, map[string]string{"alice": "s3cret"})
	p := startProxy(t, memBackends(be.addr))
	c := p.dial(t, "imap")
	runTranscript(t, c, []step{expect(capsStartTLS), send("c CAPABILITY\r\n"), expect("* CAPABILITY"), expect("c OK"),
		// The NOOP pipelined after STARTTLS must be discarded, never run.
		send("s STARTTLS\r\nx NOOP\r\n"), expect("s OK")})
	c.startTLS(p.caPool)
	runTranscript(t, c, []step{
		send("c CAPABILITY\r\n"), expect("* CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR AUTH=PLAIN AUTH=LOGIN"), expect("c OK"),
		send("s2 STARTTLS\r\n"), expect("s2 BAD"),
		send("a LOGIN alice s3cret\r\n"), expect("* CAPABILITY"), expect("a OK [CAPABILITY"),
	})
}

func TestPlaintextAuthNetworks(t *testing.T) {
	be := startMemBackend(t, map[string]string{"alice": "s3cret"})
	p := startProxy(t, memBackends(be.addr), func(o *Options) {
		o.Policy.PlaintextAuthNetworks = mustNetworks(t, "127.0.0.0/8")
	})
	c := p.dial(t, "imap")
	runTranscript(t, c, []step{expect("* OK [CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR STARTTLS AUTH=PLAIN AUTH=LOGIN]"),
		send("a LOGIN alice s3cret\r\n"), expect("a OK [CAPABILITY")})
}

func TestPreauthTimeout(t *testing.T) {
	be := startMemBackend(t, nil)
	p := startProxy(t, memBackends(be.addr), func(o *Options) { o.Policy.Preauth.Timeout = 300 * time.Millisecond })
	c := p.dial(t, "imaps")
	runTranscript(t, c, []step{expect("* OK"), expect("* BYE"), closed})
	waitLog(t, p, "session_end", "reason", "preauth_timeout")
}

// A backend login that outlasts the client's pre-auth deadline is still
// answered: the deadline bounds the wait for the client, not the proxy's
// own work.
func TestLoginAnsweredAfterPreauthDeadline(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) { answerOK(c, br, "done") })
	p := startProxy(t, fakeBackends(fb), func(o *Options) { o.Policy.Preauth.Timeout = 300 * time.Millisecond })
	c := p.dial(t, "imaps")
	runTranscript(t, c, []step{expect("* OK"), send("a LOGIN slow pw\r\n"), expect("a OK"), send("b NOOP\r\n"), expect("b OK done")})
}

func TestPreauthTimeoutMidLiteral(t *testing.T) {
	be := startMemBackend(t, nil)
	p := startProxy(t, memBackends(be.addr), func(o *Options) { o.Policy.Preauth.Timeout = 300 * time.Millisecond })
	c := p.dial(t, "imaps")
	runTranscript(t, c, []step{expect("* OK"), send("a LOGIN {10}\r\n"), expect("+"), send("abc"), expect("* BYE"), closed})
}

// TestLoginLineClientID: the login line names the client's ID fields when
// it sent some, and has no client_id field otherwise.
func TestLoginLineClientID(t *testing.T) {
	fb := startFakeBackend(t, fakeGreeting, func(c net.Conn, br *bufio.Reader) { br.ReadString('\n') })
	p := startProxy(t, fakeBackends(fb))
	loginFake(t, p)
	c := p.dial(t, "imaps")
	runTranscript(t, c, []step{expect("* OK"), send("i ID (\"name\" \"Thunderbird\")\r\n"), expect("* ID"), expect("i OK"),
		send("a LOGIN u pw\r\n"), expect("a OK")})
	waitFor(t, "two login lines", func() bool { return p.logs.FilterMessage("login").Len() == 2 })
	var with, without int
	for _, e := range p.logs.FilterMessage("login").All() {
		switch id, ok := e.ContextMap()["client_id"]; {
		case !ok:
			without++
		case fmt.Sprint(id) == "[name Thunderbird]":
			with++
		default:
			t.Errorf("client_id %v", id)
		}
	}
	if with != 1 || without != 1 {
		t.Errorf("login lines with client_id %d, without %d; want 1 and 1", with, without)
	}
}

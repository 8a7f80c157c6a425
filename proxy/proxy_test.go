package proxy

import (
	"testing"
)

func TestBasicLoginAndSelect(t *testing.T) {
	be := startMemBackend(t, map[string]string{"alice": "secret1"})
	p := startProxy(t, memBackends(be.addr))
	c := p.dial(t, "imaps")
	c.expect("* OK [CAPABILITY IMAP4rev1 ID LITERAL- SASL-IR AUTH=PLAIN AUTH=LOGIN] imapedge ready")
	c.send("a1 LOGIN alice secret1\r\n")
	l := c.expect("a1 OK [CAPABILITY ")
	t.Log(l)
	c.send("a2 SELECT INBOX\r\n")
	for {
		l := c.line()
		if l[0] != '*' {
			if l[:5] != "a2 OK" {
				t.Fatal(l)
			}
			break
		}
	}
	c.send("a3 LOGOUT\r\n")
	c.expect("* BYE")
	c.expect("a3 OK")
	c.expectEOF()
}

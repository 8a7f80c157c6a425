package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// rawConn is a line-oriented IMAP test connection.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialE2E(t *testing.T, addr string, pool *x509.CertPool) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) line() string {
	r.t.Helper()
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (%q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (r *rawConn) expect(prefix string) string {
	r.t.Helper()
	l := r.line()
	if !strings.HasPrefix(l, prefix) {
		r.t.Fatalf("got %q, want prefix %q", l, prefix)
	}
	return l
}

func (r *rawConn) until(prefix string) string {
	r.t.Helper()
	for {
		if l := r.line(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

func (r *rawConn) expectEOF() {
	r.t.Helper()
	if l, err := r.br.ReadString('\n'); err == nil {
		r.t.Fatalf("got %q, want EOF", l)
	}
}

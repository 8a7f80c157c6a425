package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// maxLine bounds one response line (literals excluded), so that a broken
// peer cannot make the load generator buffer without limit.
const maxLine = 1 << 20

// imapConn is a minimal raw IMAP client: one command at a time, responses
// read line by line, server literals skipped by their {n} count and never
// buffered. Every operation sets a deadline on the connection first.
type imapConn struct {
	nc      net.Conn // *net.TCPConn or *tls.Conn
	r       *bufio.Reader
	count   *countingReader
	timeout time.Duration // per operation
	tag     int
	line    []byte // scratch for readLine
}

// countingReader counts the bytes read from the connection (all of them:
// lines, literals, TLS-decrypted payload).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// dialTCP connects to a loopback address.
func dialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", addr)
}

// newIMAPConn wraps an established connection (TLS already done or not).
func newIMAPConn(nc net.Conn, bufSize int, timeout time.Duration) *imapConn {
	cr := &countingReader{r: nc}
	return &imapConn{nc: nc, r: bufio.NewReaderSize(cr, bufSize), count: cr, timeout: timeout}
}

// tlsHandshake runs an implicit-TLS client handshake on nc.
func tlsHandshake(nc net.Conn, conf *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	tc := tls.Client(nc, conf)
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// openIMAP connects, optionally does the TLS handshake, and reads the
// greeting.
func openIMAP(addr string, tlsConf *tls.Config, bufSize int, timeout time.Duration) (*imapConn, error) {
	nc, err := dialTCP(addr, timeout)
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		tc, err := tlsHandshake(nc, tlsConf, timeout)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := newIMAPConn(nc, bufSize, timeout)
	if err := c.greeting(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the connection.
func (c *imapConn) Close() error { return c.nc.Close() }

// BytesRead is the number of bytes received so far.
func (c *imapConn) BytesRead() int64 { return c.count.n.Load() }

func (c *imapConn) deadline() { c.nc.SetDeadline(time.Now().Add(c.timeout)) }

// greeting reads the server greeting and requires "* OK".
func (c *imapConn) greeting() error {
	c.deadline()
	line, _, err := c.readLine()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		return fmt.Errorf("greeting: unexpected %q", trimLine(line))
	}
	return nil
}

// response is what a completed command produced.
type response struct {
	status     string // OK, NO or BAD
	text       string // the tagged line
	untagged   int    // number of untagged responses ("* ...")
	literals   int    // number of server literals
	literalLen int64  // their total size
}

// Command sends one command line and reads every response up to its tagged
// completion. A tagged status other than OK is an error.
func (c *imapConn) Command(cmd string) (response, error) {
	r, err := c.command(cmd)
	if err == nil && r.status != "OK" {
		err = fmt.Errorf("%s: %s", firstWord(cmd), r.text)
	}
	return r, err
}

func (c *imapConn) command(cmd string) (response, error) {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	c.deadline()
	if _, err := io.WriteString(c.nc, tag+" "+cmd+"\r\n"); err != nil {
		return response{}, fmt.Errorf("%s: write: %w", firstWord(cmd), err)
	}
	return c.readTagged(tag, cmd)
}

// readTagged reads responses until the line tagged tag.
func (c *imapConn) readTagged(tag, cmd string) (response, error) {
	var r response
	prefix := []byte(tag + " ")
	for {
		line, lits, err := c.readLine()
		if err != nil {
			return r, fmt.Errorf("%s: %w", firstWord(cmd), err)
		}
		r.literals += lits.count
		r.literalLen += lits.size
		switch {
		case bytes.HasPrefix(line, prefix):
			rest := line[len(prefix):]
			r.text = trimLine(line)
			r.status = firstWord(string(rest))
			return r, nil
		case bytes.HasPrefix(line, []byte("* ")):
			r.untagged++
		case bytes.HasPrefix(line, []byte("+")):
			return r, fmt.Errorf("%s: unexpected continuation %q", firstWord(cmd), trimLine(line))
		default:
			return r, fmt.Errorf("%s: unexpected line %q", firstWord(cmd), trimLine(line))
		}
	}
}

// Idle sends IDLE and waits for the continuation request. It returns the
// tag to pass to Done.
func (c *imapConn) Idle() (string, error) {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	c.deadline()
	if _, err := io.WriteString(c.nc, tag+" IDLE\r\n"); err != nil {
		return "", fmt.Errorf("IDLE: write: %w", err)
	}
	for {
		line, _, err := c.readLine()
		if err != nil {
			return "", fmt.Errorf("IDLE: %w", err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("+")):
			return tag, nil
		case bytes.HasPrefix(line, []byte("* ")):
			continue
		default:
			return "", fmt.Errorf("IDLE: unexpected %q", trimLine(line))
		}
	}
}

// Done ends IDLE and waits for its tagged OK.
func (c *imapConn) Done(tag string) error {
	c.deadline()
	if _, err := io.WriteString(c.nc, "DONE\r\n"); err != nil {
		return fmt.Errorf("DONE: write: %w", err)
	}
	r, err := c.readTagged(tag, "IDLE")
	if err == nil && r.status != "OK" {
		err = fmt.Errorf("IDLE: %s", r.text)
	}
	return err
}

// Append stores msg in mailbox with a synchronizing literal.
func (c *imapConn) Append(mailbox string, msg []byte) error {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	c.deadline()
	if _, err := fmt.Fprintf(c.nc, "%s APPEND %s {%d}\r\n", tag, mailbox, len(msg)); err != nil {
		return fmt.Errorf("APPEND: write: %w", err)
	}
	line, _, err := c.readLine()
	if err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("+")) {
		return fmt.Errorf("APPEND: no continuation: %q", trimLine(line))
	}
	if _, err := c.nc.Write(append(msg[:len(msg):len(msg)], '\r', '\n')); err != nil {
		return fmt.Errorf("APPEND: write: %w", err)
	}
	r, err := c.readTagged(tag, "APPEND")
	if err == nil && r.status != "OK" {
		err = fmt.Errorf("APPEND: %s", r.text)
	}
	return err
}

// Logout sends LOGOUT, requires its tagged OK and closes the connection.
func (c *imapConn) Logout() error {
	_, err := c.Command("LOGOUT")
	c.Close()
	return err
}

type literalStats struct {
	count int
	size  int64
}

// readLine reads one response line. Server literals ("{n}\r\n" at the end
// of a line) are skipped by their count and the line continues after them;
// the returned line holds the text parts only and is valid until the next
// call.
func (c *imapConn) readLine() ([]byte, literalStats, error) {
	var lits literalStats
	c.line = c.line[:0]
	for {
		part, err := c.r.ReadSlice('\n')
		c.line = append(c.line, part...)
		if len(c.line) > maxLine {
			return nil, lits, errors.New("response line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(c.line) == 0 {
				return nil, lits, io.ErrUnexpectedEOF
			}
			return nil, lits, err
		}
		n, ok := literalSize(c.line)
		if !ok {
			return c.line, lits, nil
		}
		if _, err := c.r.Discard(int(n)); err != nil {
			return nil, lits, fmt.Errorf("skipping a literal of %d bytes: %w", n, err)
		}
		lits.count++
		lits.size += n
	}
}

// literalSize reports whether line ends with a literal announcement
// "{n}\r\n" (or "{n+}", or a bare LF) and returns n.
func literalSize(line []byte) (int64, bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	digits := bytes.TrimSuffix(line[open+1:len(line)-1], []byte("+"))
	if len(digits) == 0 || len(digits) > 12 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func trimLine(b []byte) string {
	s := string(bytes.TrimRight(b, "\r\n"))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func firstWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\r' || s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

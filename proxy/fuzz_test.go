package proxy

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/imapedge/imapedge/policy"
)

// captureConn is a net.Conn that records what is written to it.
type captureConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *captureConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

var spliceSeeds = []string{
	"a1 NOOP\r\n",
	"a1 SELECT INBOX\r\na2 FETCH 1:* (FLAGS BODY.PEEK[])\r\n",
	"a1 APPEND INBOX {5}\r\nhello\r\na2 APPEND \"x\" (\\Seen) {3+}\r\nabc\r\n",
	"a1 IDLE\r\nDONE\r\na2 LOGOUT\r\n",
	"a1 APPEND box CATENATE (TEXT {5+}\r\nhello URL \"/x\")\r\n",
	"a1 APPEND box ~{4+}\r\n\x00\x01\x02\x03\r\n",
	"a1 compress deflate\r\na2 STARTTLS\r\n",
	"* 1 FETCH (BODY[] {12}\r\na2 OK inside)\r\na1 OK done\r\n+ go\r\n+\r\n* BYE bye\r\n",
	"a1 OK [READ-WRITE] x {5}\r\n* 3 EXISTS\r\n* 2 EXPUNGE\r\n",
}

// chunks splits data at the cut points derived from cuts.
func chunks(data, cuts []byte) [][]byte {
	var out [][]byte
	for _, c := range cuts {
		if len(data) == 0 {
			break
		}
		n := int(c)%len(data) + 1
		out = append(out, data[:n])
		data = data[n:]
	}
	if len(data) > 0 {
		out = append(out, data)
	}
	return out
}

// FuzzServerDirection: whatever the backend sends, the client receives
// exactly those bytes, in any chunking, and nothing panics.
func FuzzServerDirection(f *testing.F) {
	for _, s := range spliceSeeds {
		f.Add([]byte(s), []byte{3, 7, 1})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		sp := &splice{}
		out := &bytes.Buffer{}
		sp.cw.out = out
		sp.cw.framer.T = &sp.tracker
		sp.client.T = &sp.tracker
		for _, c := range chunks(data, cuts) {
			if err := sp.cw.forward(c); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("client got %q, backend sent %q", out.Bytes(), data)
		}
	})
}

// FuzzClientDirection: whatever the client sends reaches the backend
// unchanged, except for the command lines imapedge answers itself
// (COMPRESS, STARTTLS); nothing panics, and held bytes stay bounded.
func FuzzClientDirection(f *testing.F) {
	for _, s := range spliceSeeds {
		f.Add([]byte(s), []byte{2, 9, 4})
	}
	srv := &Server{metrics: newMetrics(), opts: Options{Policy: policy.Default()}}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		s := &session{srv: srv, start: time.Now()}
		back := &captureConn{}
		sp := &splice{s: s, back: back}
		sp.cw.out = &bytes.Buffer{}
		sp.cw.framer.T = &sp.tracker
		sp.client.T = &sp.tracker
		for _, c := range chunks(data, cuts) {
			if err := sp.forwardClient(c); err != nil {
				t.Fatal(err)
			}
			if len(sp.hold) > holdMax {
				t.Fatalf("holding %d bytes", len(sp.hold))
			}
		}
		got := append(back.buf.Bytes(), sp.hold...)
		u := strings.ToUpper(string(data))
		if !strings.Contains(u, "COMPRESS") && !strings.Contains(u, "STARTTLS") {
			if !bytes.Equal(got, data) {
				t.Fatalf("backend got %q, client sent %q", got, data)
			}
		} else if len(got) > len(data) {
			t.Fatalf("backend got more than the client sent: %q vs %q", got, data)
		}
	})
}

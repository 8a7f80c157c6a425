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

// nowCaptureConn is a captureConn that also writes without waiting, at
// most limit bytes at a time (forwardClient then forwards whole lines
// before parsing them and writes the rest after).
type nowCaptureConn struct {
	captureConn
	limit int
}

func (c *nowCaptureConn) writeNow(p []byte) (int, error) {
	return c.buf.Write(p[:min(len(p), c.limit)])
}

// clientRun is what one pass of client bytes through a splice produced.
type clientRun struct {
	backend, client []byte // bytes forwarded, lines answered locally
	hold            []byte
	commands        int64
	pending         int
	selected        string
	lost            bool
}

func runClientDirection(t *testing.T, srv *Server, back net.Conn, data, cuts []byte) clientRun {
	s := &session{srv: srv, start: time.Now()}
	sp := &splice{s: s, back: back}
	client := &bytes.Buffer{}
	sp.cw.out = client
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
	var fwd []byte
	switch b := back.(type) {
	case *captureConn:
		fwd = b.buf.Bytes()
	case *nowCaptureConn:
		fwd = b.buf.Bytes()
	}
	return clientRun{backend: fwd, client: client.Bytes(), hold: sp.hold, commands: s.commands.Load(),
		pending: sp.tracker.Pending(), selected: sp.tracker.Selected(), lost: sp.tracker.Lost()}
}

// FuzzClientDirection: whatever the client sends reaches the backend
// unchanged, except for the command lines imapedge answers itself
// (COMPRESS, STARTTLS); nothing panics, and held bytes stay bounded.
// Forwarding whole lines before parsing them (to a backend that can write
// without waiting, taking any number of bytes at once) changes nothing:
// the same bytes reach the backend, the same lines are answered locally,
// the tracker ends in the same state.
func FuzzClientDirection(f *testing.F) {
	for _, s := range spliceSeeds {
		f.Add([]byte(s), []byte{2, 9, 4})
	}
	f.Add([]byte("a1 NOOP\r\na2 SELECT \"Sent Items\"\r\na3 UID FETCH 1:* FLAGS\r\n"), []byte{8, 200})
	f.Add([]byte("a1 NOOP\r\nz1 compress DEFLATE\r\na2 NOOP\r\n"), []byte{8, 20})
	srv := &Server{metrics: newMetrics(), opts: Options{Policy: policy.Default()}}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		slow := runClientDirection(t, srv, &captureConn{}, data, cuts)
		got := append(slow.backend, slow.hold...)
		u := strings.ToUpper(string(data))
		if !strings.Contains(u, "COMPRESS") && !strings.Contains(u, "STARTTLS") {
			if !bytes.Equal(got, data) {
				t.Fatalf("backend got %q, client sent %q", got, data)
			}
		} else if len(got) > len(data) {
			t.Fatalf("backend got more than the client sent: %q vs %q", got, data)
		}
		limit := 1 + len(data)
		if len(cuts) > 0 {
			limit = 1 + int(cuts[0])%(len(data)+1)
		}
		fast := runClientDirection(t, srv, &nowCaptureConn{limit: limit}, data, cuts)
		if !bytes.Equal(fast.backend, slow.backend) || !bytes.Equal(fast.client, slow.client) || !bytes.Equal(fast.hold, slow.hold) {
			t.Fatalf("forwarded first: backend %q, client %q, held %q; parsed first: %q, %q, %q",
				fast.backend, fast.client, fast.hold, slow.backend, slow.client, slow.hold)
		}
		if fast.commands != slow.commands || fast.pending != slow.pending || fast.selected != slow.selected || fast.lost != slow.lost {
			t.Fatalf("forwarded first: %+v; parsed first: %+v", fast, slow)
		}
	})
}

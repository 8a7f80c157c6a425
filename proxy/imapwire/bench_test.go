package imapwire

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
)

const benchChunk = 32 << 10

// benchFetchStream is a FETCH answer of n messages with 1 MiB bodies, with
// untagged updates in between. It has no tagged completion, so that the
// same Tracker serves every iteration.
func benchFetchStream(n int) []byte {
	body := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"), (1<<20)/58+1)[:1<<20]
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "* %d FETCH (UID %d FLAGS (\\Seen) RFC822.SIZE %d BODY[] {%d}\r\n", i, 1000+i, len(body), len(body))
		b.Write(body)
		b.WriteString(")\r\n* 12 EXISTS\r\n")
	}
	return b.Bytes()
}

func BenchmarkServerFramer(b *testing.B) {
	stream := benchFetchStream(8)
	tr := &Tracker{}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	f := new(ServerFramer)
	for b.Loop() {
		*f = ServerFramer{T: tr}
		for off := 0; off < len(stream); off += benchChunk {
			f.Feed(stream[off:min(off+benchChunk, len(stream))])
		}
		if !f.AtBoundary() {
			b.Fatal("not at a boundary at the end")
		}
	}
	if tr.Lost() {
		b.Fatal("inspection lost")
	}
}

// BenchmarkServerFramerSmallResponses is the other extreme: many short
// untagged lines (a large FLAGS fetch).
func BenchmarkServerFramerSmallResponses(b *testing.B) {
	var sb strings.Builder
	for i := 1; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, "* %d FETCH (UID %d FLAGS (\\Seen \\Answered))\r\n", i, i)
	}
	stream := []byte(sb.String())
	tr := &Tracker{}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	f := new(ServerFramer)
	for b.Loop() {
		*f = ServerFramer{T: tr}
		for off := 0; off < len(stream); off += benchChunk {
			f.Feed(stream[off:min(off+benchChunk, len(stream))])
		}
	}
}

func BenchmarkClientFramer(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1<<20)
	var buf bytes.Buffer
	for i := range 8 {
		fmt.Fprintf(&buf, "a%d APPEND INBOX (\\Seen) {%d+}\r\n", i, len(body))
		buf.Write(body)
		buf.WriteString("\r\n")
		fmt.Fprintf(&buf, "b%d NOOP\r\nc%d IDLE\r\nDONE\r\n", i, i)
	}
	stream := buf.Bytes()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		f := ClientFramer{T: &Tracker{}}
		for off := 0; off < len(stream); off += benchChunk {
			p := stream[off:min(off+benchChunk, len(stream))]
			for i := 0; i < len(p); {
				n, _ := f.Next(p[i:])
				i += n
			}
		}
	}
}

func BenchmarkReadCommand(b *testing.B) {
	in := []byte("a1 LOGIN {8}\r\nuser@ex. \"p\\\"ssw\\\\rd\"\r\n" +
		"a2 ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")\r\n")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	rd := bytes.NewReader(in)
	br := bufio.NewReaderSize(rd, 4096)
	r := &Reader{R: br, Lim: DefaultLimits}
	for b.Loop() {
		rd.Reset(in)
		br.Reset(rd)
		for range 2 {
			if _, err := r.ReadCommand(nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

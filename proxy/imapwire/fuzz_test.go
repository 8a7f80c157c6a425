package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// fuzzLimits are small so that the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxLine: 48, MaxLiteral: 12, MaxNonSync: 24, MaxCommand: 160, MaxTokens: 10}

// readAll runs ReadCommand until the stream ends or the session would
// close, checks the per-command invariants and returns a transcript.
func readAll(t *testing.T, data []byte, br *bufio.Reader) (out []string, sizes int) {
	lim := fuzzLimits
	r := &Reader{R: br, Lim: lim}
	onLiteral := func(cmd *Command, n int64, nonSync bool) error {
		if n > int64(lim.MaxLiteral) {
			t.Fatalf("LiteralFunc asked about a %d-octet literal, limit %d", n, lim.MaxLiteral)
		}
		out = append(out, fmt.Sprintf("literal %s %d %v", cmd.Tag, n, nonSync))
		// Refuse some literals to reach both rejection paths.
		if cmd.Name == "REJECT" || n == 7 {
			return &Rejection{Status: "NO", Msg: "refused"}
		}
		return nil
	}
	for calls := 0; ; calls++ {
		if calls > len(data)+1 {
			t.Fatalf("%d ReadCommand calls on %d octets: no progress", calls, len(data))
		}
		cmd, err := r.ReadCommand(onLiteral)
		if cap(r.buf) > 2*(lim.MaxLine+2)+br.Size() {
			t.Fatalf("line buffer grew to %d", cap(r.buf))
		}
		if err != nil {
			if cmd != nil {
				t.Fatalf("command and error")
			}
			out = append(out, renderErr(err))
			var pe *ProtocolError
			var rej *RejectedError
			switch {
			case errors.As(err, &rej):
				continue
			case errors.As(err, &pe):
				if pe.Fatal || pe.Bye {
					return out, sizes
				}
				continue
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				return out, sizes
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		if cmd.Size > lim.MaxCommand || cmd.Size <= 0 {
			t.Fatalf("command size %d, limit %d", cmd.Size, lim.MaxCommand)
		}
		if len(cmd.Args) > lim.MaxTokens {
			t.Fatalf("%d arguments, limit %d", len(cmd.Args), lim.MaxTokens)
		}
		if !ValidTag([]byte(cmd.Tag)) || cmd.Name == "" || cmd.Name != strings.ToUpper(cmd.Name) {
			t.Fatalf("bad tag or name %q %q", cmd.Tag, cmd.Name)
		}
		held := 0
		for _, a := range cmd.Args {
			if a.Kind == TokLiteral && len(a.Value) > lim.MaxLiteral {
				t.Fatalf("literal of %d octets, limit %d", len(a.Value), lim.MaxLiteral)
			}
			held += len(a.Value)
		}
		if held > cmd.Size {
			t.Fatalf("arguments hold %d octets, the command took %d", held, cmd.Size)
		}
		sizes += cmd.Size
		out = append(out, renderCommand(cmd))
	}
}

func FuzzReadCommand(f *testing.F) {
	for _, tc := range readCases {
		f.Add([]byte(tc.in))
	}
	for _, s := range []string{
		"a LOGIN {4}\r\nuser {4+}\r\npass\r\nb NOOP\r\n",
		"a REJECT {4+}\r\nuser {4+}\r\npass\r\nb NOOP\r\n",
		"a LOGIN {7+}\r\nrefused {30+}\r\n" + strings.Repeat("x", 30) + "\r\n",
		"a ID (\"name\" {3}\r\nfoo \"os\" {2+}\r\nxy)\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x00\x05\n",
		"a LOGIN " + strings.Repeat("u", 100) + " {5+}\r\nhello\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Differential: the transcript must not depend on the bufio size
		// or on short reads.
		var first []string
		for i, mk := range []func() *bufio.Reader{
			func() *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(data), 4096) },
			func() *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(data), 16) },
			func() *bufio.Reader { return bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 37) },
			// A size that varies with the input moves the fragment
			// boundaries of long lines around.
			func() *bufio.Reader { return bufio.NewReaderSize(bytes.NewReader(data), 16+len(data)%61) },
		} {
			br := mk()
			out, sizes := readAll(t, data, br)
			rest, _ := io.ReadAll(br)
			consumed := len(data) - len(rest)
			if sizes > consumed {
				t.Fatalf("commands' sizes add up to %d, only %d octets consumed", sizes, consumed)
			}
			if i == 0 {
				first = out
			} else if !slices.Equal(out, first) {
				t.Fatalf("transcript depends on buffering:\n%q\n%q", first, out)
			}
		}
	})
}

// ---- server framer ----

// fuzzTags are the commands in flight before the fuzzed server stream;
// a completion for any other tag (or one too many) gives up inspection.
var fuzzTags = []string{"a1", "a2", "a3", "a", "b", "t", "A044", "a1", "a"}

// headOf is lineBuf.Head for a whole line.
func headOf(line []byte) []byte {
	h := line[:min(len(line), headCap)]
	if len(line) <= headCap {
		h = TrimCRLF(h)
	}
	return h
}

// refServer is a straightforward model of ServerFramer over a whole
// stream, with a command in flight for each of tags: it returns
// AtBoundary, SawBye and Lost at the end and the completions.
func refServer(data []byte, tags []string) (boundary, bye, lost bool, done []string) {
	inFlight := map[string]int{}
	for _, tag := range tags {
		inFlight[tag]++
	}
	pos := 0
	for pos < len(data) {
		// First line of a response.
		lf := bytes.IndexByte(data[pos:], '\n')
		if lf < 0 {
			return false, bye, false, done
		}
		line := data[pos : pos+lf+1]
		pos += lf + 1
		word, rest := FirstWord(headOf(line))
		isData := false
		switch {
		case len(word) > 0 && word[0] == '+':
		case string(word) == "*":
			w2, _ := FirstWord(rest)
			switch strings.ToUpper(string(w2)) {
			case "BYE":
				bye = true
			case "OK", "NO", "BAD", "PREAUTH":
			default:
				isData = true
			}
		default:
			if inFlight[string(word)] == 0 {
				return false, bye, true, done
			}
			inFlight[string(word)]--
			status, _ := FirstWord(rest)
			st := strings.ToUpper(string(status))
			if st != "OK" && st != "NO" && st != "BAD" {
				st = "none"
			}
			done = append(done, string(word)+" "+st)
		}
		for isData {
			n, _, _, _, ok := LiteralHeader(TrimCRLF(line))
			if !ok {
				break
			}
			if n > maxSaneLiteral {
				return false, bye, true, done
			}
			if int64(len(data)-pos) <= n {
				return false, bye, false, done
			}
			pos += int(n)
			lf := bytes.IndexByte(data[pos:], '\n')
			if lf < 0 {
				return false, bye, false, done
			}
			line = data[pos : pos+lf+1]
			pos += lf + 1
		}
	}
	return true, bye, false, done
}

func FuzzServerFramer(f *testing.F) {
	for _, st := range serverStreams {
		var stream []byte
		for _, r := range st.resps {
			stream = append(stream, r.text...)
		}
		f.Add(stream, []byte{1, 2, 3, 5, 8, 13})
	}
	f.Add([]byte("* 1 FETCH (BODY[] {5}\r\nab"), []byte{3})
	f.Add([]byte("* OK [ALERT] text {5}\r\na1 OK\r\n"), []byte{0, 1, 255})
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		if len(data) > 1<<16 {
			return
		}
		tr, log := trackerWith(t, fuzzTags...)
		whole := &ServerFramer{T: tr}
		whole.Feed(data)

		// Reference model. Feed recovers from panics by giving up
		// inspection: an unexpected Lost is how a panic shows here.
		rb, rbye, rlost, rdone := refServer(data, fuzzTags)
		if whole.AtBoundary() != rb || whole.SawBye() != rbye || tr.Lost() != rlost || !slices.Equal(*log, rdone) {
			t.Fatalf("framer: boundary %v bye %v lost %v completions %q\nmodel:  boundary %v bye %v lost %v completions %q",
				whole.AtBoundary(), whole.SawBye(), tr.Lost(), *log, rb, rbye, rlost, rdone)
		}

		// Pieces at fuzz-chosen split points.
		tr2, log2 := trackerWith(t, fuzzTags...)
		pieces := &ServerFramer{T: tr2}
		off, i := 0, 0
		for off < len(data) {
			k := 1
			if len(splits) > 0 {
				k = int(splits[i%len(splits)])
				i++
			}
			k = min(max(k, 1), len(data)-off)
			pieces.Feed(data[off : off+k])
			off += k
		}
		pieces.Feed(nil)
		if pieces.AtBoundary() != whole.AtBoundary() || pieces.SawBye() != whole.SawBye() || tr2.Lost() != tr.Lost() || !slices.Equal(*log2, *log) {
			t.Fatalf("pieces: boundary %v bye %v lost %v completions %q\nwhole:  boundary %v bye %v lost %v completions %q",
				pieces.AtBoundary(), pieces.SawBye(), tr2.Lost(), *log2, whole.AtBoundary(), whole.SawBye(), tr.Lost(), *log)
		}
	})
}

// ---- client framer ----

// refClient is a straightforward model of ClientFramer over a whole
// stream, with no server answers (every synchronizing literal's octets
// follow, the line after IDLE is its DONE).
func refClient(data []byte) (evs []string, idle, lost bool) {
	pos := 0
	readLine := func() ([]byte, bool) {
		lf := bytes.IndexByte(data[pos:], '\n')
		if lf < 0 {
			return nil, false
		}
		line := data[pos : pos+lf+1]
		pos += lf + 1
		return line, true
	}
	for pos < len(data) {
		if idle {
			// Any line ends IDLE.
			if _, ok := readLine(); !ok {
				return evs, idle, false
			}
			idle = false
			continue
		}
		evs = append(evs, fmt.Sprintf("start@%d", pos))
		line, ok := readLine()
		if !ok {
			return evs, idle, false
		}
		n, _, _, _, lit := LiteralHeader(TrimCRLF(line))
		if lit && n > maxSaneLiteral {
			return evs, false, true
		}
		head := headOf(line)
		tag, rest := FirstWord(head)
		if !ValidTag(tag) || len(tag) == len(head) && len(line) > headCap {
			tag = nil // not kept
		}
		verb, _ := FirstWord(rest)
		evs = append(evs, fmt.Sprintf("line@%d %s %s", pos, tag, verb))
		// A command named IDLE waits for DONE once its last line has
		// ended, literals or not (the server's BAD, seen by the
		// Tracker, undoes that in a real session).
		isIdle := tag != nil && EqualFold(verb, "IDLE")
		for lit {
			if int64(len(data)-pos) <= n {
				return evs, idle, false
			}
			pos += int(n)
			if line, ok = readLine(); !ok {
				return evs, idle, false
			}
			n, _, _, _, lit = LiteralHeader(TrimCRLF(line))
			if lit && n > maxSaneLiteral {
				return evs, false, true
			}
		}
		idle = isIdle
	}
	return evs, idle, false
}

func clientEventStrings(evs []clientEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.String()
	}
	return out
}

func FuzzClientFramer(f *testing.F) {
	for _, st := range clientStreams {
		stream, _, _, _ := expectedClientEvents(st.cmds)
		f.Add(stream, []byte{1, 2, 3, 5, 8, 13})
	}
	f.Add([]byte("a APPEND box {5}\r\nab"), []byte{3})
	f.Add([]byte("a IDLE\r\nb NOOP\r\nDONE\r\nc NOOP\r\n"), []byte{0, 1, 255})
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		if len(data) > 1<<16 {
			return
		}
		whole := ClientFramer{T: &Tracker{}}
		wantEvs := feedClient(t, &whole, data, 0, nil)
		want := clientEventStrings(wantEvs)

		// Reference model. Next recovers from panics by giving up
		// inspection: an unexpected Lost is how a panic shows here.
		ref, refIdle, refLost := refClient(data)
		if !slices.Equal(want, ref) || whole.InIdle() != refIdle || whole.T.Lost() != refLost {
			t.Fatalf("framer: %q idle %v lost %v\nmodel:  %q idle %v lost %v", want, whole.InIdle(), whole.T.Lost(), ref, refIdle, refLost)
		}

		// Pieces at fuzz-chosen split points: feedClient checks that the
		// consumed counts add up to each piece's length.
		pieces := ClientFramer{T: &Tracker{}}
		var evs []clientEvent
		off, i := 0, 0
		for off < len(data) {
			k := 1
			if len(splits) > 0 {
				k = int(splits[i%len(splits)])
				i++
			}
			k = min(max(k, 1), len(data)-off)
			evs = feedClient(t, &pieces, data[off:off+k], off, evs)
			off += k
		}
		if got := clientEventStrings(evs); !slices.Equal(got, want) {
			t.Fatalf("pieces: %q\nwhole:  %q", got, want)
		}
		if pieces.InIdle() != whole.InIdle() || pieces.AtCommandStart() != whole.AtCommandStart() || pieces.T.Lost() != whole.T.Lost() {
			t.Fatalf("pieces: idle %v start %v lost %v, whole: idle %v start %v lost %v", pieces.InIdle(), pieces.AtCommandStart(), pieces.T.Lost(), whole.InIdle(), whole.AtCommandStart(), whole.T.Lost())
		}
	})
}

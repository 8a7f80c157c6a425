package imapwire

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// ---- chunkings ----

// chunkings returns the ways a stream of n octets is split for feeding: all
// at once, byte by byte, and random sizes from fixed seeds. Each is a list
// of chunk lengths adding up to n.
func chunkings(n int, extraCuts ...[]int) map[string][]int {
	out := map[string][]int{"whole": {n}}
	if n == 0 {
		return out
	}
	ones := make([]int, n)
	for i := range ones {
		ones[i] = 1
	}
	out["bytes"] = ones
	for seed := int64(1); seed <= 8; seed++ {
		rng := rand.New(rand.NewSource(seed))
		max := 1 + []int{2, 3, 7, 16, 31, 100, 512, 4096}[seed-1]
		var sizes []int
		for left := n; left > 0; {
			k := 1 + rng.Intn(max)
			if k > left {
				k = left
			}
			sizes = append(sizes, k)
			left -= k
		}
		out[fmt.Sprintf("seed%d", seed)] = sizes
	}
	for i, cuts := range extraCuts {
		out[fmt.Sprintf("cuts%d", i)] = cutsToSizes(n, cuts)
	}
	return out
}

// cutsToSizes turns split offsets into chunk lengths.
func cutsToSizes(n int, cuts []int) []int {
	cuts = slices.Clone(cuts)
	slices.Sort(cuts)
	var sizes []int
	prev := 0
	for _, c := range cuts {
		if c <= prev || c >= n {
			continue
		}
		sizes = append(sizes, c-prev)
		prev = c
	}
	return append(sizes, n-prev)
}

// ---- server framer ----

type serverState struct {
	boundary, bye bool
}

// trackerWith returns a Tracker with a NOOP in flight for each tag, sent
// through a ClientFramer as a client would, and a log of the completions
// it reports ("tag STATUS").
func trackerWith(tb testing.TB, tags ...string) (*Tracker, *[]string) {
	tb.Helper()
	log := new([]string)
	tr := &Tracker{OnComplete: func(c *Exchange) { *log = append(*log, c.Tag+" "+c.Status) }}
	cf := &ClientFramer{T: tr}
	for _, tag := range tags {
		feedClient(tb, cf, []byte(tag+" NOOP\r\n"), 0, nil)
	}
	if tr.Pending() != len(tags) {
		tb.Fatalf("%d commands in flight, want %d", tr.Pending(), len(tags))
	}
	return tr, log
}

// serverTrace feeds stream byte by byte, with a command in flight for
// each of tags, and returns the state after every prefix (index k: after
// k octets) and the completions reported.
func serverTrace(tb testing.TB, stream []byte, tags []string) ([]serverState, []string) {
	tr, log := trackerWith(tb, tags...)
	f := &ServerFramer{T: tr}
	trace := []serverState{{f.AtBoundary(), f.SawBye()}}
	for i := range stream {
		f.Feed(stream[i : i+1])
		trace = append(trace, serverState{f.AtBoundary(), f.SawBye()})
	}
	if tr.Lost() {
		tb.Errorf("inspection lost on %q", stream)
	}
	return trace, *log
}

// checkServerChunking feeds stream in every chunking and compares the
// state at each chunk end with the byte-by-byte trace, and the completions
// with the byte-by-byte ones.
func checkServerChunking(t *testing.T, stream []byte, tags []string, cuts []int) {
	t.Helper()
	trace, wantLog := serverTrace(t, stream, tags)
	for name, sizes := range chunkings(len(stream), cuts) {
		tr, logp := trackerWith(t, tags...)
		f := &ServerFramer{T: tr}
		off := 0
		for _, k := range sizes {
			f.Feed(stream[off : off+k])
			off += k
			if got := (serverState{f.AtBoundary(), f.SawBye()}); got != trace[off] {
				t.Errorf("%s: after %d octets: %+v, byte by byte %+v", name, off, got, trace[off])
				return
			}
		}
		if !slices.Equal(*logp, wantLog) {
			t.Errorf("%s: completions %q, byte by byte %q", name, *logp, wantLog)
		}
	}
}

// response is one complete server response and what must hold after it.
type response struct {
	text string
	bye  bool // an untagged BYE: SawBye from here on
}

func fetchBody(seq int, body string) string {
	return fmt.Sprintf("* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", seq, seq+100, len(body), body)
}

// fakeBody is message text made of lines that look like responses.
const fakeBody = "From: a@example.com\r\n" +
	"a1 OK fake\r\n" +
	"* BYE fake\r\n" +
	"+ fake continuation\r\n" +
	"* 2 FETCH (BODY[] {3}\r\n" +
	"\r\n" +
	"ends with a header {9}"

var serverStreams = []struct {
	name   string
	resps  []response
	tagged []string // completions, in order; a command with each tag is in flight
}{
	{
		name: "select and fetch",
		resps: []response{
			{text: "* 3 EXISTS\r\n"},
			{text: "* 0 RECENT\r\n"},
			{text: "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"},
			{text: "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"},
			{text: "a1 OK [READ-WRITE] SELECT completed\r\n"},
			{text: fetchBody(1, fakeBody)},
			{text: fetchBody(2, "")},
			{text: "* 3 FETCH (FLAGS (\\Seen) BODY[HEADER] {5}\r\nhe\r\n\r BODY[TEXT] {4}\r\nbody UID 7)\r\n"},
			{text: "* 1 EXPUNGE\r\n"},
			{text: "a2 OK FETCH completed\r\n"},
		},
		tagged: []string{"a1 OK", "a2 OK"},
	},
	{
		name: "status responses never carry literals",
		resps: []response{
			{text: "* OK [ALERT] text {5}\r\n"},
			{text: "* ok lower case {5}\r\n"},
			{text: "* NO warning {3}\r\n"},
			{text: "* BAD junk {2}\r\n"},
			{text: "* PREAUTH odd {1}\r\n"},
			{text: "a1 OK [READ-WRITE] done {5}\r\n"},
			{text: "a2 NO [TRYCREATE] {3}\r\n"},
			{text: "a3 BAD {0}\r\n"},
			{text: "+ {5}\r\n"},
			{text: "+{7}\r\n"},
			{text: "* 1 EXISTS\r\n"},
		},
		tagged: []string{"a1 OK", "a2 NO", "a3 BAD"},
	},
	{
		name: "continuation requests",
		resps: []response{
			{text: "+ idling\r\n"},
			{text: "+\r\n"},
			{text: "+ \r\n"},
			{text: "+ Ready for literal data\r\n"},
			{text: "* 4 EXISTS\r\n"},
			{text: "a3 OK IDLE terminated\r\n"},
		},
		tagged: []string{"a3 OK"},
	},
	{
		name: "literal shapes",
		resps: []response{
			{text: "* 1 FETCH (BODY[] {0}\r\n)\r\n"},
			{text: "* 2 FETCH (BINARY[] ~{4}\r\n\x00\x01\r\n)\r\n"},
			{text: "* 3 FETCH (BODY[] {3+}\r\nabc)\r\n"},
			{text: "* 4 FETCH (BODY[] {5}\r\nx {9})\r\n"},
			{text: "* 5 FETCH (BODY[] {2}\r\n\r\n)\r\n"},
			{text: "* 6 FETCH (BODY[] {1}\r\n\n)\r\n"},
			{text: "* 7 FETCH (BODY[HEADER] {2}\r\nab BODY[TEXT] {0}\r\n BODY[1] {1}\r\nc)\r\n"},
			{text: "* LIST () \"/\" {5}\r\nIN\"BX\r\n"},
			{text: "* 8 FETCH (ENVELOPE (" + strings.Repeat("x", 400) + ") BODY[] {6}\r\nabcdef)\r\n"},
			{text: "* 9 FETCH (BODY[] {0000000000000000003}\r\nabc)\r\n"},
			{text: "t OK\r\n"},
		},
		tagged: []string{"t OK"},
	},
	{
		name: "bare LF",
		resps: []response{
			{text: "* 5 EXISTS\n"},
			{text: "* 1 FETCH (BODY[] {3}\nabc)\n"},
			{text: "a OK\n"},
		},
		tagged: []string{"a OK"},
	},
	{
		name: "bye and logout",
		resps: []response{
			{text: "* 1 FETCH (BODY[] {11}\r\n* BYE fake\r)\r\n"},
			{text: "a1 OK\r\n"},
			{text: "* BYE Logging out {4}\r\n", bye: true},
			{text: "a2 OK LOGOUT completed\r\n", bye: true},
		},
		tagged: []string{"a1 OK", "a2 OK"},
	},
	{
		name: "bye in lower case",
		resps: []response{
			{text: "* bye shutting down\r\n", bye: true},
		},
	},
	{
		name: "long lines",
		resps: []response{
			{text: "* SEARCH" + strings.Repeat(" 12345", 2000) + "\r\n"},
			{text: "* 1 FETCH (BODY[] {300}\r\n" + strings.Repeat("y", 300) + ")\r\n"},
			{text: "a OK " + strings.Repeat("z", 1000) + " {5}\r\n"},
		},
		tagged: []string{"a OK"},
	},
}

func TestServerFramer(t *testing.T) {
	for _, st := range serverStreams {
		t.Run(st.name, func(t *testing.T) {
			var stream []byte
			var ends, cuts []int
			for _, r := range st.resps {
				cuts = append(cuts, len(stream)-1, len(stream)+1, len(stream)+len(r.text)-1)
				stream = append(stream, r.text...)
				ends = append(ends, len(stream))
			}
			tags := make([]string, len(st.tagged))
			for i, c := range st.tagged {
				tags[i], _, _ = strings.Cut(c, " ")
			}
			trace, tagged := serverTrace(t, stream, tags)
			// AtBoundary exactly at the end of each response, nowhere
			// else.
			ri := 0
			for k := 1; k <= len(stream); k++ {
				atEnd := ri < len(ends) && k == ends[ri]
				if trace[k].boundary != atEnd {
					t.Errorf("after %d octets (%q): AtBoundary %v, want %v", k, stream[max(0, k-20):k], trace[k].boundary, atEnd)
				}
				if atEnd {
					if trace[k].bye != st.resps[ri].bye {
						t.Errorf("after response %d: SawBye %v, want %v", ri, trace[k].bye, st.resps[ri].bye)
					}
					ri++
				}
			}
			if !trace[0].boundary || trace[0].bye {
				t.Errorf("a new framer: %+v", trace[0])
			}
			if !slices.Equal(tagged, st.tagged) {
				t.Errorf("completions %q, want %q", tagged, st.tagged)
			}
			checkServerChunking(t, stream, tags, cuts)
		})
	}
}

// TestServerFramerHugeLiteral checks that a large literal count is
// counted, not allocated, and keeps the framer inside the response; a
// count beyond what a framer believes gives up inspection.
func TestServerFramerHugeLiteral(t *testing.T) {
	f := &ServerFramer{T: &Tracker{}}
	f.Feed([]byte(fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n", int64(maxSaneLiteral))))
	for range 100 {
		f.Feed([]byte("a1 OK\r\n* BYE x\r\n"))
	}
	if f.AtBoundary() || f.SawBye() || f.T.Lost() {
		t.Errorf("inside a huge literal: AtBoundary %v SawBye %v Lost %v", f.AtBoundary(), f.SawBye(), f.T.Lost())
	}
	if f.remaining != maxSaneLiteral-1600 {
		t.Errorf("remaining %d", f.remaining)
	}

	for _, count := range []string{fmt.Sprint(int64(maxSaneLiteral) + 1), "9223372036854775807"} {
		f := &ServerFramer{T: &Tracker{}}
		f.Feed([]byte("* 1 FETCH (BODY[] {" + count + "}\r\n"))
		if !f.T.Lost() || f.AtBoundary() {
			t.Errorf("literal of %s octets: Lost %v AtBoundary %v, want lost", count, f.T.Lost(), f.AtBoundary())
		}
		f.Feed([]byte("* 2 EXISTS\r\n* BYE x\r\n"))
		if f.AtBoundary() {
			t.Errorf("AtBoundary after inspection was lost")
		}
	}
}

// TestServerFramerOverflowCount checks that a count past 63 bits is not a
// literal (it cannot be one): the line is an ordinary data response.
func TestServerFramerOverflowCount(t *testing.T) {
	f := &ServerFramer{T: &Tracker{}}
	f.Feed([]byte("* 1 FETCH (BODY[] {9223372036854775808}\r\n"))
	if !f.AtBoundary() {
		t.Errorf("overflowing count taken as a literal")
	}
}

// TestServerFramerUnknownTag checks that a completion for a command never
// sent gives up inspection rather than guessing.
func TestServerFramerUnknownTag(t *testing.T) {
	tr, log := trackerWith(t, "a1")
	f := &ServerFramer{T: tr}
	f.Feed([]byte("a1 OK\r\n"))
	if !f.AtBoundary() || tr.Lost() || len(*log) != 1 {
		t.Fatalf("known tag: AtBoundary %v Lost %v completions %q", f.AtBoundary(), tr.Lost(), *log)
	}
	f.Feed([]byte("a1 OK again\r\n"))
	if !tr.Lost() || f.AtBoundary() {
		t.Errorf("second completion of a1: Lost %v AtBoundary %v", tr.Lost(), f.AtBoundary())
	}
}

// TestServerFramerContinuation checks how the server stream answers a
// command waiting for a continuation request: "+" (1), its completion
// (-1) or nothing yet (0), whatever the chunking.
func TestServerFramerContinuation(t *testing.T) {
	tests := []struct {
		name   string
		tag    string
		stream string
		want   int8
	}{
		{"continuation", "a", "+ Ready\r\n", 1},
		{"continuation without space", "a", "+\r\n", 1},
		{"refused", "a", "a NO [TRYCREATE] no such mailbox\r\n", -1},
		{"refused with BAD", "A044", "A044 BAD No such command\r\n", -1},
		{"other tag", "a", "b OK done\r\n", 0},
		{"tag prefix", "a", "aa NO x\r\n", 0},
		{"untagged data and status", "a", "* 3 EXISTS\r\n* OK [ALERT] a\r\n* NO a\r\n* BAD a\r\n", 0},
		{"tag inside a FETCH literal", "a", "* 1 FETCH (BODY[] {11}\r\na NO x\r\n+ x)\r\n", 0},
		{"data then continuation", "a", "* 1 EXPUNGE\r\n+ go\r\n", 1},
		{"other completion then continuation", "a", "b OK\r\n+ go\r\n", 1},
		// After "+" the client sends the literal anyway: a later
		// completion does not take that back (IDLE aside).
		{"+ then NO", "a", "+ go\r\na NO x\r\n", 1},
		{"NO then +", "a", "a NO x\r\n+ go\r\n", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, sizes := range chunkings(len(tt.stream)) {
				tr, _ := trackerWith(t, "b", "aa")
				cf := &ClientFramer{T: tr}
				feedClient(t, cf, []byte(tt.tag+" APPEND box {5}\r\n"), 0, nil)
				f := &ServerFramer{T: tr}
				off := 0
				for _, k := range sizes {
					f.Feed([]byte(tt.stream[off : off+k]))
					off += k
				}
				if tr.Lost() {
					t.Fatalf("%s: inspection lost", name)
				}
				if got := tr.takeAnswer(); got != tt.want {
					t.Errorf("%s: answer %d, want %d", name, got, tt.want)
				}
				if tr.takeAnswer() != 0 {
					t.Errorf("%s: takeAnswer does not clear", name)
				}
			}
		})
	}
}

// ---- client framer ----

// clientEvent is one event with the absolute offset it was returned at.
type clientEvent struct {
	off  int
	ev   ClientEvent
	tag  string
	verb string
}

func (e clientEvent) String() string {
	if e.ev == EvCommandStart {
		return fmt.Sprintf("start@%d", e.off)
	}
	return fmt.Sprintf("line@%d %s %s", e.off, e.tag, e.verb)
}

// feedClient runs p through f, appending the events (offsets from base).
// It fails when Next makes no progress.
func feedClient(t testing.TB, f *ClientFramer, p []byte, base int, evs []clientEvent) []clientEvent {
	t.Helper()
	for i := 0; i < len(p); {
		n, ev := f.Next(p[i:])
		if n < 0 || n > len(p)-i {
			t.Fatalf("Next consumed %d of %d", n, len(p)-i)
		}
		if n == 0 && ev == EvNone {
			t.Fatalf("Next made no progress at offset %d", base+i)
		}
		if ev == EvNone && n != len(p)-i {
			t.Fatalf("Next returned EvNone after %d of %d octets", n, len(p)-i)
		}
		i += n
		switch ev {
		case EvNone:
		case EvCommandStart:
			evs = append(evs, clientEvent{off: base + i, ev: ev})
		case EvCommandLine:
			evs = append(evs, clientEvent{off: base + i, ev: ev, tag: string(f.Tag()), verb: string(f.Verb())})
		default:
			t.Fatalf("unknown event %d", ev)
		}
	}
	return evs
}

// clientCommand is one whole command (with its literals and, for IDLE,
// its DONE) and the tag and verb its first line must report.
type clientCommand struct {
	text, tag, verb string
}

var clientStreams = []struct {
	name string
	cmds []clientCommand
}{
	{
		name: "plain commands",
		cmds: []clientCommand{
			{"a NOOP\r\n", "a", "NOOP"},
			{"b SELECT INBOX\r\n", "b", "SELECT"},
			{"c UID FETCH 1:* (FLAGS)\r\n", "c", "UID"},
			{"d logout\r\n", "d", "logout"},
			{"e\r\n", "e", ""},
			{"\r\n", "", ""},
		},
	},
	{
		name: "non-sync literals",
		cmds: []clientCommand{
			{"a APPEND INBOX {5+}\r\nhello\r\n", "a", "APPEND"},
			{"b APPEND INBOX (\\Seen) {10+}\r\nc LOGOUT\r\n\r\n", "b", "APPEND"},
			{"c LOGIN {4+}\r\nuser {4+}\r\npass\r\n", "c", "LOGIN"},
			{"d APPEND box {0+}\r\n\r\n", "d", "APPEND"},
			{"e APPEND box {11+}\r\nx NOOP\r\n{3}\r\n", "e", "APPEND"},
		},
	},
	{
		name: "sync literals without a server answer: the octets follow",
		cmds: []clientCommand{
			{"a APPEND INBOX {5}\r\nhello\r\n", "a", "APPEND"},
			{"b APPEND box {0}\r\n\r\n", "b", "APPEND"},
			{"c APPEND box {3}\r\n{3}\r\n", "c", "APPEND"},
		},
	},
	{
		name: "literal8",
		cmds: []clientCommand{
			{"a APPEND INBOX ~{4}\r\n\x00\x01\r\n\r\n", "a", "APPEND"},
			{"b APPEND INBOX ~{3+}\r\n\x00\n\x00\r\n", "b", "APPEND"},
		},
	},
	{
		name: "MULTIAPPEND",
		cmds: []clientCommand{
			{"a APPEND INBOX {3+}\r\nabc (\\Seen) \"7-Feb-1994 22:43:04 -0800\" {4+}\r\ndefg {2+}\r\nhi\r\n", "a", "APPEND"},
			{"b APPEND INBOX {3}\r\nabc {4}\r\ndefg\r\n", "b", "APPEND"},
		},
	},
	{
		name: "CATENATE",
		cmds: []clientCommand{
			{"a APPEND box CATENATE (TEXT {5}\r\nhello URL \"/x\")\r\n", "a", "APPEND"},
			{"b APPEND box CATENATE (TEXT {5+}\r\nhello URL \"/x\" TEXT {6+}\r\nbye)\r\n)\r\n", "b", "APPEND"},
			{"c APPEND box (\\Seen) CATENATE (URL \"/INBOX;UID=1\" TEXT {0+}\r\n)\r\n", "c", "APPEND"},
		},
	},
	{
		name: "IDLE and DONE",
		cmds: []clientCommand{
			{"a IDLE\r\nDONE\r\n", "a", "IDLE"},
			{"b NOOP\r\n", "b", "NOOP"},
			{"c idle\r\ndone\r\n", "c", "idle"},
			{"d IDLE\nDONE\n", "d", "IDLE"},
		},
	},
	{
		// Like Dovecot ("BAD Expected DONE"), any line ends IDLE.
		name: "any line ends IDLE",
		cmds: []clientCommand{
			{"a IDLE\r\nb NOOP\r\n", "a", "IDLE"},
			{"DONE x\r\n", "DONE", "x"},
			{"c IDLE\r\nc APPEND box {3+}\r\n", "c", "IDLE"},
			{"d NOOP\r\n", "d", "NOOP"},
		},
	},
	{
		name: "long lines",
		cmds: []clientCommand{
			{"a SEARCH " + strings.Repeat("x", 500) + "\r\n", "a", "SEARCH"},
			{"b APPEND box " + strings.Repeat("(\\Seen) ", 100) + "{3+}\r\nabc\r\n", "b", "APPEND"},
			{"c SEARCH TEXT {2+}\r\nab" + strings.Repeat(" OR", 200) + " TEXT {1+}\r\nc\r\n", "c", "SEARCH"},
		},
	},
	{
		name: "tag of 64 octets",
		cmds: []clientCommand{
			{strings.Repeat("t", 64) + " NOOP\r\n", strings.Repeat("t", 64), "NOOP"},
		},
	},
}

// expectedClientEvents derives the events and boundaries of a command list.
func expectedClientEvents(cmds []clientCommand) (stream []byte, evs []clientEvent, ends, cuts []int) {
	for _, c := range cmds {
		start := len(stream)
		evs = append(evs, clientEvent{off: start, ev: EvCommandStart})
		first := strings.IndexByte(c.text, '\n') + 1
		evs = append(evs, clientEvent{off: start + first, ev: EvCommandLine, tag: c.tag, verb: c.verb})
		stream = append(stream, c.text...)
		ends = append(ends, len(stream))
		cuts = append(cuts, start-1, start+1, start+first-1, start+first+1, len(stream)-1)
	}
	return stream, evs, ends, cuts
}

// checkClientChunking feeds stream in every chunking and compares the
// events with want.
func checkClientChunking(t *testing.T, stream []byte, want []clientEvent, cuts []int) {
	t.Helper()
	for name, sizes := range chunkings(len(stream), cuts) {
		f := ClientFramer{T: &Tracker{}}
		var evs []clientEvent
		off := 0
		for _, k := range sizes {
			evs = feedClient(t, &f, stream[off:off+k], off, evs)
			off += k
		}
		if !slices.Equal(evs, want) {
			t.Errorf("%s: events\n%v\nwant\n%v", name, evs, want)
		}
	}
}

func TestClientFramer(t *testing.T) {
	for _, st := range clientStreams {
		t.Run(st.name, func(t *testing.T) {
			stream, want, ends, cuts := expectedClientEvents(st.cmds)
			// Fed command by command: at each command's end the framer
			// stands at a command start, out of IDLE.
			f := ClientFramer{T: &Tracker{}}
			if !f.AtCommandStart() || f.InIdle() {
				t.Fatalf("new framer: AtCommandStart %v InIdle %v", f.AtCommandStart(), f.InIdle())
			}
			var evs []clientEvent
			prev := 0
			for i, end := range ends {
				evs = feedClient(t, &f, stream[prev:end], prev, evs)
				prev = end
				if !f.AtCommandStart() || f.InIdle() {
					t.Errorf("after command %d: AtCommandStart %v InIdle %v", i, f.AtCommandStart(), f.InIdle())
				}
			}
			if !slices.Equal(evs, want) {
				t.Errorf("events\n%v\nwant\n%v", evs, want)
			}
			checkClientChunking(t, stream, want, cuts)
		})
	}
}

// TestClientFramerStates checks AtCommandStart and InIdle inside commands.
func TestClientFramerStates(t *testing.T) {
	f := ClientFramer{T: &Tracker{}}
	steps := []struct {
		data          string
		atStart, idle bool
	}{
		{"a IDLE\r\n", false, true},
		{"DO", false, true},
		{"NE\r\n", true, false},
		{"b APPEND box {3+}\r\n", false, false},
		{"ab", false, false},
		{"c", false, false},
		{"\r\n", true, false},
		{"c NOOP", false, false},
		{"\r\n", true, false},
	}
	off := 0
	for _, s := range steps {
		feedClient(t, &f, []byte(s.data), off, nil)
		off += len(s.data)
		if f.AtCommandStart() != s.atStart || f.InIdle() != s.idle {
			t.Errorf("after %q: AtCommandStart %v InIdle %v, want %v %v", s.data, f.AtCommandStart(), f.InIdle(), s.atStart, s.idle)
		}
	}
}

func TestClientFramerLine(t *testing.T) {
	f := ClientFramer{T: &Tracker{}}
	long := "a SEARCH " + strings.Repeat("x", headCap+100) + "\r\n"
	evs := feedClient(t, &f, []byte(long), 0, nil)
	if len(evs) != 2 || evs[1].ev != EvCommandLine {
		t.Fatalf("events %v", evs)
	}
	if got := string(f.Line()); got != long[:headCap] {
		t.Errorf("Line() = %q, want the first %d octets", got, headCap)
	}
	feedClient(t, &f, []byte("b NOOP\r\n"), 0, nil)
	if got := string(f.Line()); got != "b NOOP" {
		t.Errorf("Line() = %q", got)
	}
}

// step is one direction's bytes in a session transcript.
type step struct {
	dir  byte // 'C' client→server, 'S' server→client
	data string
}

var sessions = []struct {
	name  string
	steps []step
	want  []string // client events
}{
	{
		name: "sync literal answered with +",
		steps: []step{
			{'C', "a APPEND INBOX {5}\r\n"},
			{'S', "+ Ready for literal data\r\n"},
			{'C', "hello\r\n"},
			{'S', "a OK APPEND completed\r\n"},
			{'C', "b NOOP\r\n"},
			{'S', "b OK\r\n"},
		},
		want: []string{"start@0", "line@20 a APPEND", "start@27", "line@35 b NOOP"},
	},
	{
		name: "sync literal answered with + without space",
		steps: []step{
			{'C', "a APPEND INBOX {0}\r\n"},
			{'S', "+\r\n"},
			{'C', "\r\n"},
			{'S', "a NO empty message\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@20 a APPEND", "start@22", "line@30 b NOOP"},
	},
	{
		name: "sync literal refused with NO",
		steps: []step{
			{'C', "a APPEND nobox {5}\r\n"},
			{'S', "a NO [TRYCREATE] no such mailbox\r\n"},
			{'C', "b NOOP\r\n"},
			{'S', "b OK\r\n"},
		},
		want: []string{"start@0", "line@20 a APPEND", "start@20", "line@28 b NOOP"},
	},
	{
		name: "sync literal refused with BAD (RFC 9051 §7.6)",
		steps: []step{
			{'C', "A044 BLURDYBLOOP {102856}\r\n"},
			{'S', "A044 BAD No such command as \"BLURDYBLOOP\"\r\n"},
			{'C', "A045 NOOP\r\n"},
		},
		want: []string{"start@0", "line@27 A044 BLURDYBLOOP", "start@27", "line@38 A045 NOOP"},
	},
	{
		name: "MULTIAPPEND refused after the first message (RFC 3502)",
		steps: []step{
			{'C', "A003 APPEND saved-messages (\\Seen) {3}\r\n"},
			{'S', "+ Ready for literal data\r\n"},
			{'C', "abc (\\Seen) \" 7-Feb-1994 22:43:04 -0800\" {35403}\r\n"},
			{'S', "A003 NO APPEND failed: Disk quota exceeded\r\n"},
			{'C', "A004 NOOP\r\n"},
		},
		want: []string{"start@0", "line@40 A003 APPEND", "start@90", "line@101 A004 NOOP"},
	},
	{
		name: "MULTIAPPEND answered twice",
		steps: []step{
			{'C', "a APPEND box {3}\r\n"},
			{'S', "+ go\r\n"},
			{'C', "abc {4}\r\n"},
			{'S', "+ go\r\n"},
			{'C', "defg\r\n"},
			{'S', "a OK\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@18 a APPEND", "start@33", "line@41 b NOOP"},
	},
	{
		name: "untagged data and a FETCH literal before the +",
		steps: []step{
			{'C', "a APPEND box {3}\r\n"},
			{'S', "* 4 EXISTS\r\n* 1 FETCH (BODY[] {12}\r\n+ fake\r\na NO)\r\n* OK [ALERT] {2}\r\n+ ok\r\n"},
			{'C', "abc\r\n"},
			{'S', "a OK\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@18 a APPEND", "start@23", "line@31 b NOOP"},
	},
	{
		name: "another command completes while the + is pending",
		steps: []step{
			{'C', "z NOOP\r\na APPEND box {3}\r\n"},
			{'S', "z OK noop\r\n+ go\r\n"},
			{'C', "abc\r\n"},
			{'S', "a OK\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@8 z NOOP", "start@8", "line@26 a APPEND", "start@31", "line@39 b NOOP"},
	},
	{
		name: "sync literal8 answered",
		steps: []step{
			{'C', "a APPEND box ~{3}\r\n"},
			{'S', "+ go\r\n"},
			{'C', "\x00\x01\x02\r\n"},
			{'S', "a OK\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@19 a APPEND", "start@24", "line@32 b NOOP"},
	},
	{
		name: "CATENATE with a sync literal refused",
		steps: []step{
			{'C', "a APPEND box CATENATE (URL \"/x\" TEXT {5}\r\n"},
			{'S', "a NO [BADURL /x] bad url\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@42 a APPEND", "start@42", "line@50 b NOOP"},
	},
	{
		name: "CATENATE with a sync literal answered",
		steps: []step{
			{'C', "a APPEND box CATENATE (TEXT {5}\r\n"},
			{'S', "+ go\r\n"},
			{'C', "hello URL \"/x\" TEXT {3}\r\n"},
			{'S', "+ go\r\n"},
			{'C', "bye)\r\n"},
			{'S', "a OK\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@33 a APPEND", "start@64", "line@72 b NOOP"},
	},
	{
		name: "non-sync literals do not involve the server",
		steps: []step{
			{'C', "a APPEND box {3+}\r\nabc\r\nb NOOP\r\n"},
			{'S', "a OK\r\nb OK\r\n"},
			{'C', "c NOOP\r\n"},
		},
		want: []string{"start@0", "line@19 a APPEND", "start@24", "line@32 b NOOP", "start@32", "line@40 c NOOP"},
	},
	{
		name: "IDLE then DONE",
		steps: []step{
			{'C', "a IDLE\r\n"},
			{'S', "+ idling\r\n* 5 EXISTS\r\n* 1 FETCH (FLAGS (\\Seen))\r\n"},
			{'C', "DONE\r\n"},
			{'S', "a OK IDLE terminated\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@8 a IDLE", "start@14", "line@22 b NOOP"},
	},
	{
		name: "IDLE with DONE sent before the +",
		steps: []step{
			{'C', "a IDLE\r\nDONE\r\n"},
			{'S', "+ idling\r\na OK IDLE terminated\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@8 a IDLE", "start@14", "line@22 b NOOP"},
	},
	{
		name: "IDLE refused with NO: no DONE follows",
		steps: []step{
			{'C', "a IDLE\r\n"},
			{'S', "* 3 EXISTS\r\na NO [LIMIT] too many idlers\r\n"},
			{'C', "b NOOP\r\n"},
			{'S', "b OK\r\n"},
			{'C', "c IDLE\r\n"},
			{'S', "+ idling\r\n"},
			{'C', "DONE\r\n"},
		},
		want: []string{"start@0", "line@8 a IDLE", "start@8", "line@16 b NOOP", "start@16", "line@24 c IDLE"},
	},
	{
		name: "IDLE refused with BAD, then a sync literal",
		steps: []step{
			{'C', "a IDLE\r\n"},
			{'S', "a BAD not now\r\n"},
			{'C', "b APPEND box {3}\r\n"},
			{'S', "+ go\r\n"},
			{'C', "abc\r\n"},
			{'S', "b OK\r\n"},
			{'C', "c NOOP\r\n"},
		},
		want: []string{"start@0", "line@8 a IDLE", "start@8", "line@26 b APPEND", "start@31", "line@39 c NOOP"},
	},
	{
		name: "sync literal refused, 200-octet tag",
		steps: []step{
			{'C', strings.Repeat("t", 200) + " APPEND box {10}\r\n"},
			{'S', strings.Repeat("t", 200) + " NO [TRYCREATE] no such mailbox\r\n"},
			{'C', "b NOOP\r\n"},
		},
		want: []string{"start@0", "line@218 " + strings.Repeat("t", 200) + " APPEND", "start@218", "line@226 b NOOP"},
	},
}

// runSession feeds a transcript, each step cut by sizes(step index, len),
// to a ServerFramer and a ClientFramer sharing a Tracker.
func runSession(t *testing.T, steps []step, sizes func(i, n int) []int) []string {
	t.Helper()
	tr := &Tracker{}
	sf := &ServerFramer{T: tr}
	cf := &ClientFramer{T: tr}
	var evs []clientEvent
	coff := 0
	for i, s := range steps {
		off := 0
		for _, k := range sizes(i, len(s.data)) {
			p := []byte(s.data[off : off+k])
			off += k
			if s.dir == 'S' {
				sf.Feed(p)
			} else {
				evs = feedClient(t, cf, p, coff, evs)
				coff += k
			}
		}
		if s.dir == 'S' && !sf.AtBoundary() {
			t.Errorf("step %d: server stream not at a boundary (lost: %v)", i, tr.Lost())
		}
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.String())
	}
	return out
}

func TestSessions(t *testing.T) {
	for _, st := range sessions {
		t.Run(st.name, func(t *testing.T) {
			got := runSession(t, st.steps, func(_, n int) []int { return []int{n} })
			if !slices.Equal(got, st.want) {
				t.Fatalf("events\n%q\nwant\n%q", got, st.want)
			}
			names := []string{"bytes"}
			for seed := 1; seed <= 8; seed++ {
				names = append(names, fmt.Sprintf("seed%d", seed))
			}
			for _, name := range names {
				got := runSession(t, st.steps, func(_, n int) []int { return chunkings(n)[name] })
				if !slices.Equal(got, st.want) {
					t.Errorf("%s: events\n%q\nwant\n%q", name, got, st.want)
				}
			}
		})
	}
}

// TestLineBuf checks head and tail against the whole line for every way
// of adding it in two or three pieces.
func TestLineBuf(t *testing.T) {
	lines := []string{"", "a", "a OK\r\n", strings.Repeat("h", headCap-2) + "\r\n", strings.Repeat("h", headCap+5) + " {12345}\r\n",
		"x ~{9223372036854775807}\r\n", strings.Repeat("0123456789", 40)}
	for _, line := range lines {
		for i := 0; i <= len(line); i++ {
			for j := i; j <= len(line); j += 1 + j/7 {
				var b lineBuf
				b.add([]byte(line[:i]))
				b.add([]byte(line[i:j]))
				b.add([]byte(line[j:]))
				wantHead := line[:min(len(line), headCap)]
				if len(line) <= headCap {
					wantHead = string(TrimCRLF([]byte(wantHead)))
				}
				if string(b.Head()) != wantHead {
					t.Fatalf("%q split at %d,%d: head %q", line, i, j, b.Head())
				}
				if got, want := string(b.tail[:b.tailLen]), line[max(0, len(line)-tailCap):]; got != want {
					t.Fatalf("%q split at %d,%d: tail %q, want %q", line, i, j, got, want)
				}
				if b.total != int64(len(line)) {
					t.Fatalf("total %d", b.total)
				}
			}
		}
	}
}

// TestLineBufLiteralMatchesLiteralHeader checks that the framers' tail
// sees the same literal header as LiteralHeader on the whole line, for
// counts of every digit length.
func TestLineBufLiteralMatchesLiteralHeader(t *testing.T) {
	for k := 1; k <= 22; k++ {
		for _, form := range []string{"{%s}", "{%s+}", "~{%s}", "~{%s+}"} {
			for _, pre := range []string{"", "x", "* 1 FETCH (BODY[] ", strings.Repeat("y", 300) + " "} {
				for _, eol := range []string{"\r\n", "\n"} {
					count := strings.Repeat("9", k)
					if k > 1 {
						count = "1" + strings.Repeat("0", k-1)
					}
					body := pre + fmt.Sprintf(form, count)
					var b lineBuf
					b.add([]byte(body + eol))
					n1, ns1, ok1 := b.literal()
					n2, ns2, _, _, ok2 := LiteralHeader([]byte(body))
					if n1 != n2 || ns1 != ns2 || ok1 != ok2 {
						t.Errorf("%q: tail says %d %v %v, LiteralHeader %d %v %v", body, n1, ns1, ok1, n2, ns2, ok2)
					}
				}
			}
		}
	}
}

func TestServerFramerDoesNotAllocate(t *testing.T) {
	// No tagged completion: the Tracker stays as it is from run to run.
	stream := []byte(fetchBody(1, fakeBody) + "* OK [ALERT] x {5}\r\n* 3 EXISTS\r\n+ go\r\n")
	tr, _ := trackerWith(t, "a")
	sf := &ServerFramer{T: tr}
	if n := testing.AllocsPerRun(100, func() { sf.Feed(stream) }); n != 0 {
		t.Errorf("ServerFramer.Feed allocates %v times", n)
	}
	if tr.Lost() || !sf.AtBoundary() {
		t.Errorf("Lost %v AtBoundary %v", tr.Lost(), sf.AtBoundary())
	}
}

// TestCommandNameInterned: the usual command names cost no allocation;
// others still come out in upper case.
func TestCommandNameInterned(t *testing.T) {
	verb := []byte("uid")
	if n := testing.AllocsPerRun(100, func() { commandName(verb) }); n != 0 {
		t.Errorf("commandName(%q): %v allocations", verb, n)
	}
	for in, want := range map[string]string{"noop": "NOOP", "Fetch": "FETCH", "xFoo": "XFOO", "x-y.z": "X-Y.Z", "": "", "a(b": ""} {
		if got := commandName([]byte(in)); got != want {
			t.Errorf("commandName(%q) = %q, want %q", in, got, want)
		}
	}
}

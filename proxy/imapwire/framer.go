package imapwire

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// headCap is how much of a line's start a framer keeps: enough for a tag,
// a command name and a mailbox argument, never a literal body.
const headCap = 256

// tailCap is how much of a line's end a framer keeps to spot a literal
// header: "~{" + 19 digits + "+}".
const tailCap = 24

// lineBuf keeps the head and the tail of one line without ever holding the
// whole of it.
type lineBuf struct {
	head    [headCap]byte
	headLen int
	tail    [tailCap]byte
	tailLen int
	total   int64
}

func (b *lineBuf) reset() { b.headLen, b.tailLen, b.total = 0, 0, 0 }

func (b *lineBuf) add(p []byte) {
	b.total += int64(len(p))
	if b.headLen < headCap {
		b.headLen += copy(b.head[b.headLen:], p)
	}
	if len(p) >= tailCap {
		b.tailLen = copy(b.tail[:], p[len(p)-tailCap:])
		return
	}
	if b.tailLen+len(p) > tailCap {
		drop := b.tailLen + len(p) - tailCap
		copy(b.tail[:], b.tail[drop:b.tailLen])
		b.tailLen -= drop
	}
	b.tailLen += copy(b.tail[b.tailLen:], p)
}

// Head returns the first bytes of the line (at most 256), CRLF removed when
// the line is that short.
func (b *lineBuf) Head() []byte {
	if int64(b.headLen) == b.total {
		return TrimCRLF(b.head[:b.headLen])
	}
	return b.head[:b.headLen]
}

func (b *lineBuf) literal() (n int64, nonSync, ok bool) {
	n, nonSync, _, _, ok = LiteralHeader(TrimCRLF(b.tail[:b.tailLen]))
	return n, nonSync, ok
}

// SyncLiteral lets the server framer tell the client framer how a pending
// synchronizing literal was answered: a "+" means the octets follow, a
// tagged completion of that command means they never come (RFC 9051 §7.6).
type SyncLiteral struct {
	pending atomic.Bool
	mu      sync.Mutex
	tag     []byte
	answer  int8 // 0 none yet, 1 continuation, -1 tagged completion
}

func (s *SyncLiteral) expect(tag []byte) {
	s.mu.Lock()
	s.tag = append(s.tag[:0], tag...)
	s.answer = 0
	s.mu.Unlock()
	s.pending.Store(true)
}

func (s *SyncLiteral) continuation() {
	if !s.pending.Load() {
		return
	}
	s.mu.Lock()
	if s.answer == 0 {
		s.answer = 1
	}
	s.mu.Unlock()
}

func (s *SyncLiteral) tagged(tag []byte) {
	if !s.pending.Load() {
		return
	}
	s.mu.Lock()
	if s.answer == 0 && string(s.tag) == string(tag) {
		s.answer = -1
	}
	s.mu.Unlock()
}

// take returns the answer and clears the pending state.
func (s *SyncLiteral) take() int8 {
	s.mu.Lock()
	a := s.answer
	s.answer = 0
	s.mu.Unlock()
	s.pending.Store(false)
	return a
}

// ServerFramer follows the server→client stream of a logged-in session and
// always knows whether it stands at a response boundary. It reads lines,
// counts the literals of data responses and classifies each response's
// first line; it never stores more than a line's head and tail.
type ServerFramer struct {
	// Sync, when set, is told about continuation requests and tagged
	// completions so the client framer can resolve synchronizing literals.
	Sync *SyncLiteral
	// OnTagged, when set, is called for each tagged status response with
	// its tag and status word (OK, NO, BAD).
	OnTagged func(tag, status []byte)

	line      lineBuf
	inLine    bool
	remaining int64 // literal octets still to come
	midResp   bool  // a data response continues after a literal
	data      bool  // the current response may carry literals
	sawBye    bool
}

// AtBoundary reports whether everything fed so far ends exactly at the end
// of a complete response, where a line may be injected.
func (f *ServerFramer) AtBoundary() bool { return !f.inLine && f.remaining == 0 && !f.midResp }

// SawBye reports whether an untagged BYE has been seen.
func (f *ServerFramer) SawBye() bool { return f.sawBye }

// Feed consumes bytes forwarded from the server.
func (f *ServerFramer) Feed(p []byte) {
	for len(p) > 0 {
		if f.remaining > 0 {
			if int64(len(p)) <= f.remaining {
				f.remaining -= int64(len(p))
				return
			}
			p = p[f.remaining:]
			f.remaining = 0
		}
		i := indexLF(p)
		if i < 0 {
			f.line.add(p)
			f.inLine = true
			return
		}
		f.line.add(p[:i+1])
		p = p[i+1:]
		f.inLine = false
		f.endLine()
	}
}

func (f *ServerFramer) endLine() {
	first := !f.midResp
	if first {
		f.classify(f.line.Head())
	}
	f.midResp = false
	if f.data {
		if n, _, ok := f.line.literal(); ok {
			f.remaining = n
			f.midResp = true
		}
	}
	f.line.reset()
}

func (f *ServerFramer) classify(head []byte) {
	f.data = false
	word, rest := FirstWord(head)
	switch {
	case len(word) > 0 && word[0] == '+':
		if f.Sync != nil {
			f.Sync.continuation()
		}
	case len(word) == 1 && word[0] == '*':
		w2, _ := FirstWord(rest)
		switch {
		case EqualFold(w2, "BYE"):
			f.sawBye = true
		case EqualFold(w2, "OK"), EqualFold(w2, "NO"), EqualFold(w2, "BAD"), EqualFold(w2, "PREAUTH"):
		default:
			f.data = true
		}
	default:
		status, _ := FirstWord(rest)
		if f.Sync != nil {
			f.Sync.tagged(word)
		}
		if f.OnTagged != nil {
			f.OnTagged(word, status)
		}
	}
}

// ClientEvent is what ClientFramer.Next stopped at.
type ClientEvent uint8

// Client framer events.
const (
	// EvNone: all of the input was consumed.
	EvNone ClientEvent = iota
	// EvCommandStart: the next byte starts a new command.
	EvCommandStart
	// EvCommandLine: the first line of a command has just ended; Tag and
	// Verb describe it.
	EvCommandLine
)

type clientState uint8

const (
	csStart     clientState = iota // before the first byte of a command
	csFirstLine                    // inside a command's first line
	csLine                         // inside a later line of a command
	csLiteral                      // inside literal octets
	csSyncWait                     // after "{n}", waiting to learn whether octets follow
	csIdle                         // after IDLE: the next line is DONE
)

// ClientFramer follows the client→server stream of a logged-in session:
// command lines, literals (resolving synchronizing ones through Sync), and
// IDLE/DONE.
type ClientFramer struct {
	Sync *SyncLiteral

	state     clientState
	line      lineBuf
	remaining int64
	pendingN  int64
	tag       [64]byte
	tagLen    int
	idle      bool
}

// InIdle reports whether the client is in IDLE (its DONE not yet seen).
func (f *ClientFramer) InIdle() bool { return f.idle }

// AtCommandStart reports whether the next byte starts a new command.
func (f *ClientFramer) AtCommandStart() bool { return f.state == csStart && !f.idle }

// Tag returns the tag of the command whose first line was last completed.
func (f *ClientFramer) Tag() []byte { return f.tag[:f.tagLen] }

// Verb returns the command name of the line last completed (upper case not
// guaranteed).
func (f *ClientFramer) Verb() []byte {
	_, rest := FirstWord(f.line.Head())
	v, _ := FirstWord(rest)
	return v
}

// Line returns the head of the command line last completed.
func (f *ClientFramer) Line() []byte { return f.line.Head() }

// Next consumes p up to the next event and returns the number of bytes
// consumed and the event.
func (f *ClientFramer) Next(p []byte) (int, ClientEvent) {
	n := 0
	for n < len(p) {
		switch f.state {
		case csSyncWait:
			answer := int8(1)
			if f.Sync != nil {
				answer = f.Sync.take()
			}
			if answer == -1 {
				// Refused: the octets never come; this is a new command.
				f.state = csStart
				continue
			}
			f.remaining = f.pendingN
			f.state = csLiteral
		case csLiteral:
			if f.remaining == 0 {
				f.state = csLine
				continue
			}
			k := int64(len(p) - n)
			if k > f.remaining {
				k = f.remaining
			}
			f.remaining -= k
			n += int(k)
			if f.remaining == 0 {
				f.state = csLine
			}
		case csStart:
			f.line.reset()
			if f.idle {
				f.state = csLine
				continue
			}
			f.state = csFirstLine
			return n, EvCommandStart
		default: // csFirstLine, csLine
			i := indexLF(p[n:])
			if i < 0 {
				f.line.add(p[n:])
				return len(p), EvNone
			}
			f.line.add(p[n : n+i+1])
			n += i + 1
			if ev := f.endLine(); ev != EvNone {
				return n, ev
			}
		}
	}
	return n, EvNone
}

func (f *ClientFramer) endLine() ClientEvent {
	first := f.state == csFirstLine
	if f.idle {
		if EqualFold(f.line.Head(), "DONE") {
			f.idle = false
		}
		f.state = csStart
		return EvNone
	}
	if first {
		tag, rest := FirstWord(f.line.Head())
		f.tagLen = copy(f.tag[:], tag)
		if EqualFold(rest, "IDLE") {
			f.idle = true
		}
	}
	if n, nonSync, ok := f.line.literal(); ok {
		if nonSync {
			f.remaining = n
			f.state = csLiteral
		} else {
			f.pendingN = n
			f.state = csSyncWait
			if f.Sync != nil {
				f.Sync.expect(f.Tag())
			}
		}
	} else {
		f.state = csStart
	}
	if first {
		return EvCommandLine
	}
	return EvNone
}

func indexLF(p []byte) int { return bytes.IndexByte(p, '\n') }

package imapwire

import (
	"bytes"
)

// headCap is how much of a line's start a framer keeps: enough for a tag,
// a command name and its mailbox arguments, never a literal body.
const headCap = 1024

// serverHeadCap is the server framer's smaller head: a response's tag,
// status and response code fit in it.
const serverHeadCap = 256

// tailCap is how much of a line's end a framer keeps to spot a literal
// header: "~{" + 19 digits + "+}" + CRLF.
const tailCap = 26

// maxSaneLiteral bounds literal sizes a framer believes; a larger count
// means the stream is not what the framer thinks it is.
const maxSaneLiteral = 1 << 40

// lineBuf keeps the head and the tail of one line without ever holding the
// whole of it. The head's room (headCap unless max says less) is allocated
// on first use.
type lineBuf struct {
	head    []byte
	max     int // head size; 0 means headCap
	headLen int
	tail    [tailCap]byte
	tailLen int
	total   int64
}

func (b *lineBuf) reset() { b.headLen, b.tailLen, b.total = 0, 0, 0 }

func (b *lineBuf) add(p []byte) {
	b.total += int64(len(p))
	if b.head == nil {
		if b.max == 0 {
			b.max = headCap
		}
		b.head = make([]byte, b.max)
	}
	if b.headLen < len(b.head) {
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

// release drops the head's storage (a quiet session need not hold it); the
// next line allocates it again. Only between lines.
func (b *lineBuf) release() {
	b.reset()
	b.head = nil
}

// complete reports whether the whole line fits in the head.
func (b *lineBuf) complete() bool { return int64(b.headLen) == b.total }

// Head returns the first bytes of the line (at most headCap), CRLF removed
// when the whole line fits.
func (b *lineBuf) Head() []byte {
	if b.complete() {
		return TrimCRLF(b.head[:b.headLen])
	}
	return b.head[:b.headLen]
}

func (b *lineBuf) literal() (n int64, nonSync, ok bool) {
	n, nonSync, _, _, ok = LiteralHeader(TrimCRLF(b.tail[:b.tailLen]))
	return n, nonSync, ok
}

// ServerFramer follows the server→client stream of a logged-in session
// and always knows whether it stands at a response boundary. It reads
// lines, counts the literals of data responses, and reports continuation
// requests, untagged responses and tagged completions to its Tracker. It
// never stores more than a line's head and tail.
type ServerFramer struct {
	T *Tracker

	line      lineBuf
	inLine    bool
	remaining int64 // literal octets still to come
	midResp   bool  // a data response continues after a literal
	data      bool  // the current response may carry literals
	sawBye    bool

	respBytes int64
	target    *Exchange // the command the current response is attributed to
	untagged  bool
	done      *Exchange // completed by the current (tagged) response
}

// AtBoundary reports whether everything fed so far ends exactly at the end
// of a complete response, where a line may be injected. It is false for
// good once inspection is lost.
func (f *ServerFramer) AtBoundary() bool {
	return !f.inLine && f.remaining == 0 && !f.midResp && !f.T.Lost()
}

// Release lets go of the line buffer while the stream is at a response
// boundary; it is allocated again when the next response starts.
func (f *ServerFramer) Release() {
	if f.AtBoundary() {
		f.line.release()
	}
}

// MayHoldContinuation reports whether p, the next bytes of the stream,
// may hold a continuation request: whether a line after the literal under
// way, if any, starts with '+' (conservatively also inside later
// literals).
func (f *ServerFramer) MayHoldContinuation(p []byte) bool {
	if f.remaining >= int64(len(p)) {
		return false
	}
	if f.remaining == 0 && !f.inLine && !f.midResp && p[0] == '+' {
		return true
	}
	q := p[f.remaining:]
	for {
		i := bytes.IndexByte(q, '\n')
		if i < 0 || i+1 == len(q) {
			return false
		}
		if q[i+1] == '+' {
			return true
		}
		q = q[i+1:]
	}
}

// SawBye reports whether an untagged BYE has been seen.
func (f *ServerFramer) SawBye() bool { return f.sawBye }

// Feed consumes bytes forwarded from the server. It never fails: a stream
// it cannot follow marks inspection lost, and the bytes still flow.
func (f *ServerFramer) Feed(p []byte) {
	if f.T.Lost() {
		return
	}
	if f.line.max == 0 {
		f.line.max = serverHeadCap
	}
	defer func() {
		if r := recover(); r != nil {
			f.T.Lose()
		}
	}()
	for len(p) > 0 {
		if f.remaining > 0 {
			if int64(len(p)) <= f.remaining {
				f.remaining -= int64(len(p))
				f.respBytes += int64(len(p))
				if f.remaining == 0 {
					f.inLine = true // the response goes on after its literal
				}
				return
			}
			f.respBytes += f.remaining
			p = p[f.remaining:]
			f.remaining = 0
			f.inLine = true
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.line.add(p)
			f.respBytes += int64(len(p))
			f.inLine = true
			return
		}
		f.line.add(p[:i+1])
		f.respBytes += int64(i + 1)
		p = p[i+1:]
		f.inLine = false
		f.endLine()
		if f.T.Lost() {
			return
		}
	}
}

func (f *ServerFramer) endLine() {
	if !f.midResp {
		f.classify(f.line.Head())
	}
	f.midResp = false
	if f.data {
		if n, _, ok := f.line.literal(); ok {
			if n > maxSaneLiteral {
				f.T.Lose()
				return
			}
			f.line.reset()
			f.remaining = n
			f.midResp = true
			if n == 0 {
				f.inLine = true
			}
			return
		}
	}
	f.line.reset()
	f.endResponse()
}

// endResponse attributes the response's octets and reports a completion.
func (f *ServerFramer) endResponse() {
	t := f.T
	if c := f.target; c != nil {
		t.mu.Lock()
		c.BytesOut += f.respBytes
		if f.untagged {
			c.Untagged++
		}
		t.mu.Unlock()
	}
	done := f.done
	f.respBytes, f.target, f.untagged, f.done = 0, nil, false, nil
	t.settle(done)
}

func (f *ServerFramer) classify(head []byte) {
	f.data = false
	word, rest := FirstWord(head)
	switch {
	case len(word) > 0 && word[0] == '+':
		f.target = f.T.continuation()
	case len(word) == 1 && word[0] == '*':
		f.untagged = true
		f.target = f.T.oldest()
		w2, args := FirstWord(rest)
		switch {
		case EqualFold(w2, "BYE"):
			f.sawBye = true
			f.T.mu.Lock()
			f.T.sawBye = true
			f.T.mu.Unlock()
		case EqualFold(w2, "OK"), EqualFold(w2, "NO"), EqualFold(w2, "BAD"), EqualFold(w2, "PREAUTH"):
		case EqualFold(w2, "ENABLED"):
			f.T.enabled(args)
		default:
			f.data = true
		}
	default:
		status, text := FirstWord(rest)
		var code []byte
		if len(text) > 0 && text[0] == '[' {
			code = text[1:]
			for i, c := range code {
				if c == ' ' || c == ']' {
					code = code[:i]
					break
				}
			}
		}
		c := f.T.complete(word, status, code)
		if c == nil {
			// A completion for a command never sent: the framers have
			// lost the thread.
			f.T.Lose()
			return
		}
		f.target, f.done = c, c
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
	// EvCommandLine: the first line of a command has just ended; Tag,
	// Verb and Current describe it.
	EvCommandLine
)

type clientState uint8

const (
	csStart     clientState = iota // before the first byte of a command
	csFirstLine                    // inside a command's first line
	csLine                         // inside a later line of a command
	csLiteral                      // inside literal octets
	csSyncWait                     // after "{n}", waiting to learn whether octets follow
)

// ClientFramer follows the client→server stream of a logged-in session:
// command lines, their mailbox arguments, literals (learning from the
// Tracker whether a synchronizing literal was accepted or refused), and
// IDLE … DONE.
type ClientFramer struct {
	T *Tracker

	state     clientState
	line      lineBuf
	remaining int64
	pendingN  int64
	idle      bool // the current command is IDLE, waiting for DONE
	tagTrunc  bool

	cur      *Exchange
	last     *Exchange // the command whose first line ended last
	bytesIn  int64     // octets of cur not yet added to it
	argIdx   int8      // top-level argument the scan is at
	depth    int
	scanning bool // mailbox arguments still to find
	capture  *[]byte
}

// InIdle reports whether the client is in IDLE (its DONE not yet seen).
func (f *ClientFramer) InIdle() bool { return f.idle }

// AtCommandStart reports whether the next byte starts a new command.
func (f *ClientFramer) AtCommandStart() bool { return f.state == csStart && !f.idle }

// Release lets go of the line buffer between lines (Line and Verb then
// return nothing); it is allocated again when the next line starts.
func (f *ClientFramer) Release() {
	if f.state == csStart {
		f.line.release()
	}
}

// Current returns the command whose first line ended last.
func (f *ClientFramer) Current() *Exchange { return f.last }

// Tag returns the tag of the command whose first line ended last, or nil
// when it was too long to keep or not a valid tag.
func (f *ClientFramer) Tag() []byte {
	if f.tagTrunc || f.last == nil || f.last.Tag == "" {
		return nil
	}
	return []byte(f.last.Tag)
}

// Verb returns the command name of the line last completed (upper case
// not guaranteed).
func (f *ClientFramer) Verb() []byte {
	_, rest := FirstWord(f.line.Head())
	v, _ := FirstWord(rest)
	return v
}

// Line returns the head of the line last completed.
func (f *ClientFramer) Line() []byte { return f.line.Head() }

// Next consumes p up to the next event and returns the number of bytes
// consumed and the event. Once inspection is lost it consumes everything
// and reports nothing.
func (f *ClientFramer) Next(p []byte) (n int, ev ClientEvent) {
	if f.T.Lost() {
		return len(p), EvNone
	}
	defer func() {
		if r := recover(); r != nil {
			f.T.Lose()
			n, ev = len(p), EvNone
		}
	}()
	for n < len(p) {
		switch f.state {
		case csSyncWait:
			if f.T.takeAnswer() == -1 {
				// Refused: the octets never come; this is a new command.
				f.endCommand()
				continue
			}
			f.remaining = f.pendingN
			f.addLiteral(f.pendingN)
			f.state = csLiteral
		case csLiteral:
			if f.remaining == 0 {
				// The command goes on after its literal, on a new line.
				f.capture = nil
				f.line.reset()
				f.state = csLine
				continue
			}
			k := int64(len(p) - n)
			if k > f.remaining {
				k = f.remaining
			}
			if f.capture != nil {
				room := maxMailboxLen - len(*f.capture)
				f.T.mu.Lock() // the server side may complete the command meanwhile
				*f.capture = append(*f.capture, p[n:n+int(min(k, int64(max(room, 0))))]...)
				f.T.mu.Unlock()
			}
			f.remaining -= k
			f.bytesIn += k
			n += int(k)
		case csStart:
			f.line.reset()
			if f.idle {
				if f.T.peekAnswer() != -1 {
					// The line is the DONE that ends IDLE.
					f.state = csLine
					continue
				}
				// IDLE was refused: no DONE follows, this is a command.
				f.idle = false
				f.T.takeAnswer()
				f.endCommand()
			}
			f.state = csFirstLine
			f.cur = &Exchange{mboxArg: -1, mboxToArg: -1}
			f.bytesIn = 0
			return n, EvCommandStart
		default: // csFirstLine, csLine
			i := bytes.IndexByte(p[n:], '\n')
			if i < 0 {
				f.line.add(p[n:])
				f.bytesIn += int64(len(p) - n)
				return len(p), EvNone
			}
			f.line.add(p[n : n+i+1])
			f.bytesIn += int64(i + 1)
			n += i + 1
			if ev := f.endLine(); ev != EvNone {
				return n, ev
			}
		}
	}
	return n, EvNone
}

// addLiteral counts a literal the client is about to send.
func (f *ClientFramer) addLiteral(n int64) {
	f.T.mu.Lock()
	f.cur.LiteralBytes += n
	f.T.mu.Unlock()
}

// flush adds the octets read so far to the current command.
func (f *ClientFramer) flush() {
	if f.cur == nil || f.bytesIn == 0 {
		return
	}
	f.T.mu.Lock()
	f.cur.BytesIn += f.bytesIn
	f.T.mu.Unlock()
	f.bytesIn = 0
}

// endCommand ends the client part of the current command.
func (f *ClientFramer) endCommand() {
	f.flush()
	if f.cur != nil && f.cur.Tag != "" {
		f.T.clientDone(f.cur)
	}
	f.cur, f.capture, f.idle = nil, nil, false
	f.state = csStart
}

// Finish ends the client side at the end of the session: octets read of an
// unfinished command are added to it. Call it before Tracker.Finish.
func (f *ClientFramer) Finish() {
	if f.T.Lost() || f.cur == nil {
		return
	}
	f.flush()
	f.cur, f.capture = nil, nil
}

func (f *ClientFramer) endLine() ClientEvent {
	first := f.state == csFirstLine
	if f.idle {
		// Any line ends IDLE: DONE, or whatever a client sends that does
		// not know better (the server then answers IDLE with BAD).
		f.T.takeAnswer()
		f.endCommand()
		f.line.reset()
		return EvNone
	}
	n, nonSync, lit := f.line.literal()
	if lit && n > maxSaneLiteral {
		f.T.Lose()
		return EvNone
	}
	head := f.line.Head()
	if first {
		head = f.parseFirst(head)
	}
	if f.scanning {
		if lit {
			// Cut the literal header off the line.
			if _, _, _, start, ok := LiteralHeader(head); ok {
				head = head[:start]
			}
		}
		f.scanArgs(head, lit)
	}
	if first {
		f.last = f.cur
		if f.cur.Tag != "" {
			f.T.begin(f.cur)
		}
	}
	if lit {
		if nonSync {
			f.remaining = n
			f.addLiteral(n)
			f.state = csLiteral
		} else {
			f.pendingN = n
			f.state = csSyncWait
			f.T.await(f.cur)
		}
		f.flush()
	} else if f.cur.Name == "IDLE" && f.cur.Tag != "" {
		f.flush()
		f.idle = true
		f.T.await(f.cur)
		f.state = csStart
	} else {
		f.endCommand()
	}
	if first {
		return EvCommandLine
	}
	return EvNone
}

// parseFirst reads tag and command name off a command's first line and
// returns the rest of the line.
func (f *ClientFramer) parseFirst(head []byte) []byte {
	c := f.cur
	tag, rest := FirstWord(head)
	f.tagTrunc = len(tag) == len(head) && !f.line.complete()
	if ValidTag(tag) && !f.tagTrunc {
		c.Tag = string(tag)
	}
	verb, rest := FirstWord(rest)
	name := commandName(verb)
	if name == "UID" {
		var sub []byte
		sub, rest = FirstWord(rest)
		name = uidName(commandName(sub))
	}
	c.Name = name
	c.mboxArg, c.mboxToArg = mailboxArgs(name)
	f.argIdx, f.depth, f.capture = 0, 0, nil
	f.scanning = c.mboxArg >= 0 && c.Tag != ""
	return rest
}

// commandName returns the upper-case command name, or "" if verb is not
// an atom of a sane length.
func commandName(verb []byte) string {
	if len(verb) == 0 || len(verb) > 32 {
		return ""
	}
	var buf [32]byte
	for i, c := range verb {
		if !IsAtomChar(c) {
			return ""
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	if name, ok := commonNames[string(buf[:len(verb)])]; ok {
		return name // no allocation for the usual commands
	}
	return string(buf[:len(verb)])
}

// uidName returns "UID " + name, without allocating for the usual ones.
func uidName(name string) string {
	switch name {
	case "FETCH":
		return "UID FETCH"
	case "STORE":
		return "UID STORE"
	case "SEARCH":
		return "UID SEARCH"
	case "COPY":
		return "UID COPY"
	case "MOVE":
		return "UID MOVE"
	case "EXPUNGE":
		return "UID EXPUNGE"
	}
	return "UID " + name
}

// commonNames interns the command names clients send all the time.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE",
		"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE",
		"STATUS", "APPEND", "IDLE", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY",
		"MOVE", "UID", "ID", "GETQUOTAROOT", "GETQUOTA", "GETMETADATA", "SETMETADATA", "COMPRESS", "SORT", "THREAD",
		"ESEARCH", "GETACL", "MYRIGHTS", "LISTRIGHTS", "SETACL", "DELETEACL", "XLIST"} {
		m[n] = n
	}
	return m
}()

// scanArgs walks the top-level arguments in s, keeping the mailbox
// arguments. lit says that a literal follows s; it is itself the next
// argument.
func (f *ClientFramer) scanArgs(s []byte, lit bool) {
	c := f.cur
	for i := 0; i < len(s); {
		switch ch := s[i]; ch {
		case ' ':
			i++
		case '(':
			f.depth++
			i++
		case ')':
			f.depth--
			i++
			if f.depth == 0 {
				f.argIdx++
			}
		case '"':
			v, next, ok := unquote(s, i)
			if !ok {
				f.scanning = false
				return
			}
			f.keepArg(v)
			i = next
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' {
				if s[j] == '[' { // FETCH-style section: skip to its end
					if k := bytes.IndexByte(s[j:], ']'); k > 0 {
						j += k
					}
				}
				j++
			}
			f.keepArg(s[i:j])
			i = j
		}
	}
	if !f.line.complete() {
		// Arguments beyond the head are unknown.
		f.scanning = false
		return
	}
	if lit && f.depth == 0 {
		switch f.argIdx {
		case c.mboxArg:
			f.capture = &c.mailbox
		case c.mboxToArg:
			f.capture = &c.mailboxTo
		}
		f.argIdx++
	}
	if f.argIdx > c.mboxArg && f.argIdx > c.mboxToArg {
		f.scanning = false
	}
}

func (f *ClientFramer) keepArg(v []byte) {
	if f.depth != 0 {
		return
	}
	c := f.cur
	if len(v) > maxMailboxLen {
		v = v[:maxMailboxLen]
	}
	switch f.argIdx {
	case c.mboxArg:
		f.T.mu.Lock()
		c.mailbox = append(c.mailbox[:0], v...)
		f.T.mu.Unlock()
	case c.mboxToArg:
		f.T.mu.Lock()
		c.mailboxTo = append(c.mailboxTo[:0], v...)
		f.T.mu.Unlock()
	}
	f.argIdx++
}

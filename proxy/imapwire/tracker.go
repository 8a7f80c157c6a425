package imapwire

import (
	"sync"
	"sync/atomic"
	"time"
)

// Exchange is one client command, followed from its first line to its
// tagged completion: the command and the responses it got. The fields are
// written by the framers under the Tracker's lock; once handed to
// OnComplete the Exchange is no longer touched by them.
type Exchange struct {
	Seq       uint64 // 1, 2, … per session
	Tag       string
	Name      string // upper case; "UID FETCH" as one name
	Mailbox   string // the mailbox it names (COPY/MOVE: destination; RENAME: old name)
	MailboxTo string // RENAME's new name
	Selected  string // mailbox selected when the command began
	Status    string // OK, NO, BAD, BYE or none
	Code      string // response code atom of the completion
	Start     time.Time
	End       time.Time
	// BytesIn counts the client's octets of the command (lines and
	// literals); BytesOut the server's octets attributed to it (untagged
	// responses while it was the oldest outstanding command, continuation
	// requests, the tagged completion); LiteralBytes the sizes of the
	// client's literals; Untagged the untagged responses attributed to it.
	BytesIn, BytesOut, LiteralBytes int64
	Untagged                        int
	// Local is set when imapedge answered the command itself.
	Local bool

	mboxArg, mboxToArg int8 // top-level argument holding a mailbox, or -1
	mailbox, mailboxTo []byte
	clientDone         bool // the client has sent all of it
	completed          bool // the server has answered it
	reported           bool // handed to OnComplete
}

// Duration is how long the command took, from its first line to its
// completion.
func (c *Exchange) Duration() time.Duration { return c.End.Sub(c.Start) }

// mailboxArgs says which top-level arguments of a command name mailboxes.
func mailboxArgs(name string) (mbox, to int8) {
	switch name {
	case "SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE", "STATUS", "APPEND",
		"GETQUOTAROOT", "GETACL", "MYRIGHTS", "SETACL", "DELETEACL", "LISTRIGHTS":
		return 0, -1
	case "RENAME":
		return 0, 1
	case "COPY", "MOVE", "UID COPY", "UID MOVE":
		return 1, -1
	}
	return -1, -1
}

// maxMailboxLen bounds a mailbox name kept for events; longer names are
// cut.
const maxMailboxLen = 1024

// Tracker is the state both framers of one session share: the commands
// in flight (matched FIFO per tag, RFC 9051 §2.2.1), the command waiting
// for a continuation request (a synchronizing literal or IDLE), the
// selected mailbox, and whether inspection had to give up.
type Tracker struct {
	// OnComplete is called once per command, outside the lock, when both
	// the server has answered it and the client has sent all of it (a
	// server may refuse a command before its literal is through), in the
	// goroutine of the framer that saw the later of the two.
	OnComplete func(*Exchange)
	// Now returns the time; default time.Now.
	Now func() time.Time

	mu       sync.Mutex
	pending  []*Exchange // in order of their first lines
	answered []*Exchange // answered, the client still sending
	awaiting *Exchange   // waits for "+" or its completion
	answer   int8        // for awaiting: 0 none yet, 1 continuation, -1 completed
	selected []byte
	selName  string // selected, decoded (nameSelected)
	utf8     bool   // ENABLE UTF8=ACCEPT or IMAP4rev2: names are UTF-8
	seq      uint64
	sawBye   bool

	lost atomic.Bool
}

func (t *Tracker) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Lost reports whether inspection gave up on this session: bytes still
// flow unchanged, but no more commands are recorded and no response
// boundary is trusted.
func (t *Tracker) Lost() bool { return t != nil && t.lost.Load() }

// Lose marks inspection as lost.
func (t *Tracker) Lose() {
	if t != nil {
		t.lost.Store(true)
	}
}

// Pending returns the number of commands in flight.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// OrderSensitive reports whether what the client sends next may depend on
// how the server answers the commands in flight, as the client framer
// reads it: a command waits for a continuation request (a synchronizing
// literal, IDLE), or one in flight changes the selected mailbox or how
// mailbox names are read (SELECT, EXAMINE, CLOSE, UNSELECT, ENABLE). While
// it is true the server framer must see each response before the client
// does; otherwise a response may be followed after it is forwarded.
func (t *Tracker) OrderSensitive() bool {
	if t.Lost() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.awaiting != nil {
		return true
	}
	for _, c := range t.pending {
		switch c.Name {
		case "SELECT", "EXAMINE", "CLOSE", "UNSELECT", "ENABLE", "":
			return true
		}
	}
	return false
}

// Selected returns the selected mailbox ("" when none).
func (t *Tracker) Selected() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.selName
}

// nameSelected decodes the selected mailbox once it or the decoding
// changes, not for every command that begins. t.mu is held.
func (t *Tracker) nameSelected() { t.selName = t.decode(t.selected) }

func (t *Tracker) decode(name []byte) string {
	if t.utf8 {
		return string(name)
	}
	return DecodeMailbox(name)
}

// begin registers a command whose first line has ended.
func (t *Tracker) begin(c *Exchange) {
	t.mu.Lock()
	t.seq++
	c.Seq = t.seq
	c.Start = t.now()
	c.Selected = t.selName
	t.pending = append(t.pending, c)
	t.mu.Unlock()
}

// await records that c waits for a continuation request.
func (t *Tracker) await(c *Exchange) {
	t.mu.Lock()
	t.awaiting, t.answer = c, 0
	t.mu.Unlock()
}

// takeAnswer returns how the awaited command was answered and stops
// waiting.
func (t *Tracker) takeAnswer() int8 {
	t.mu.Lock()
	a := t.answer
	t.awaiting, t.answer = nil, 0
	t.mu.Unlock()
	return a
}

// peekAnswer returns the answer so far.
func (t *Tracker) peekAnswer() int8 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.answer
}

// continuation handles a "+" from the server and returns the command it
// belongs to (nil when none waits).
func (t *Tracker) continuation() *Exchange {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.awaiting != nil && t.answer == 0 {
		t.answer = 1
	}
	if t.awaiting != nil {
		return t.awaiting
	}
	if len(t.pending) > 0 {
		return t.pending[len(t.pending)-1]
	}
	return nil
}

// oldest returns the oldest command in flight, to which untagged
// responses are attributed.
func (t *Tracker) oldest() *Exchange {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 {
		return nil
	}
	return t.pending[0]
}

// complete matches a tagged completion to the oldest command in flight
// with that tag. It returns nil when no command has that tag. The caller
// reports the command with settle once the response has been counted.
func (t *Tracker) complete(tag, status, code []byte) *Exchange {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, c := range t.pending {
		if c.Tag != string(tag) {
			continue
		}
		t.pending = append(t.pending[:i], t.pending[i+1:]...)
		c.Status = upperStatus(status)
		c.Code = string(code)
		t.finishLocked(c)
		if c.Status == "OK" || c.Status == "NO" {
			switch c.Name {
			case "SELECT", "EXAMINE":
				if c.Status == "OK" {
					t.selected = append(t.selected[:0], c.mailbox...)
				} else {
					t.selected = t.selected[:0]
				}
				t.nameSelected()
			case "CLOSE", "UNSELECT":
				if c.Status == "OK" {
					t.selected = t.selected[:0]
					t.nameSelected()
				}
			}
		}
		return c
	}
	return nil
}

// settle reports c if both sides are done with it.
func (t *Tracker) settle(c *Exchange) {
	if c == nil {
		return
	}
	t.mu.Lock()
	ready := c.completed && c.clientDone && !c.reported
	if ready {
		t.readyLocked(c)
	} else if c.completed && !c.reported {
		t.answered = append(t.answered, c)
	}
	t.mu.Unlock()
	if ready {
		t.emit(c)
	}
}

// clientDone records that the client has sent all of c and reports it if
// the server has answered already.
func (t *Tracker) clientDone(c *Exchange) {
	t.mu.Lock()
	c.clientDone = true
	ready := c.completed && !c.reported
	if ready {
		for i, a := range t.answered {
			if a == c {
				t.answered = append(t.answered[:i], t.answered[i+1:]...)
				break
			}
		}
		t.readyLocked(c)
	}
	t.mu.Unlock()
	if ready {
		t.emit(c)
	}
}

// readyLocked fills what is derived from the raw fields just before c is
// reported.
func (t *Tracker) readyLocked(c *Exchange) {
	c.reported = true
	if c.mboxArg >= 0 {
		c.Mailbox = t.decode(c.mailbox)
	}
	if c.mboxToArg >= 0 {
		c.MailboxTo = t.decode(c.mailboxTo)
	}
}

// finishLocked fills the completion fields of c.
func (t *Tracker) finishLocked(c *Exchange) {
	c.End = t.now()
	c.completed = true
	// A completion before "+" means a synchronizing literal never comes.
	// After "+" the client sends it anyway; only IDLE ends on completion.
	if t.awaiting == c && (t.answer == 0 || c.Name == "IDLE") {
		t.answer = -1
	}
}

// CompleteLocal completes c as answered by imapedge itself and reports
// it.
func (t *Tracker) CompleteLocal(c *Exchange, status, code string, bytesOut int) {
	if c == nil {
		return
	}
	t.mu.Lock()
	for i, p := range t.pending {
		if p == c {
			t.pending = append(t.pending[:i], t.pending[i+1:]...)
			break
		}
	}
	c.Status, c.Code, c.Local = status, code, true
	c.BytesOut += int64(bytesOut)
	t.finishLocked(c)
	t.mu.Unlock()
	t.settle(c)
}

func (t *Tracker) emit(c *Exchange) {
	if c != nil && t.OnComplete != nil {
		t.OnComplete(c)
	}
}

// enabled handles "* ENABLED …": UTF8=ACCEPT and IMAP4rev2 make mailbox
// names UTF-8 (RFC 6855 §3, RFC 9051 §6.3.1).
func (t *Tracker) enabled(caps []byte) {
	for len(caps) > 0 {
		var w []byte
		w, caps = FirstWord(caps)
		if EqualFold(w, "UTF8=ACCEPT") || EqualFold(w, "IMAP4REV2") {
			t.mu.Lock()
			t.utf8 = true
			t.nameSelected()
			t.mu.Unlock()
		}
	}
}

// Finish ends tracking when the session ends: every command still in
// flight is reported with status BYE (the server said BYE) or none.
func (t *Tracker) Finish() {
	if t.Lost() {
		return // the commands in flight are not known for sure
	}
	t.mu.Lock()
	rest := append(t.answered, t.pending...)
	t.pending, t.answered = nil, nil
	status := "none"
	if t.sawBye {
		status = "BYE"
	}
	var report []*Exchange
	for _, c := range rest {
		if c.reported {
			continue
		}
		if !c.completed {
			c.Status = status
			t.finishLocked(c)
		}
		t.readyLocked(c)
		report = append(report, c)
	}
	t.mu.Unlock()
	for _, c := range report {
		t.emit(c)
	}
}

func upperStatus(s []byte) string {
	switch {
	case EqualFold(s, "OK"):
		return "OK"
	case EqualFold(s, "NO"):
		return "NO"
	case EqualFold(s, "BAD"):
		return "BAD"
	}
	return "none"
}

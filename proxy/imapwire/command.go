package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// TokenKind says what a Token is.
type TokenKind uint8

// Token kinds.
const (
	TokAtom TokenKind = iota
	TokQuoted
	TokLiteral
	TokLParen
	TokRParen
)

// Token is one argument token of a command. Value is the atom text, the
// unescaped quoted string or the literal's octets; it is owned by the Command.
type Token struct {
	Kind  TokenKind
	Value []byte
}

// IsString reports whether the token is an astring (atom, quoted or literal).
func (t Token) IsString() bool { return t.Kind <= TokLiteral }

// IsNIL reports whether the token is the atom NIL.
func (t Token) IsNIL() bool { return t.Kind == TokAtom && EqualFold(t.Value, "NIL") }

// Command is one complete client command read before authentication.
type Command struct {
	Tag  string
	Name string // upper case
	Args []Token
	// Size is the number of bytes the command took on the wire.
	Size int

	args [4]Token // Args' first backing array: pre-auth commands are short
}

// Limits bound what ReadCommand accepts.
type Limits struct {
	MaxLine    int // longest line, literals excluded
	MaxLiteral int // largest literal of either kind
	MaxNonSync int // largest non-synchronizing literal; above it: BAD [TOOBIG] and BYE
	MaxCommand int // all lines and literals of one command together
	MaxTokens  int // argument tokens of one command
}

// DefaultLimits are the pre-auth limits DESIGN.md §3 gives as defaults.
var DefaultLimits = Limits{MaxLine: 16 << 10, MaxLiteral: 8 << 10, MaxNonSync: 4096, MaxCommand: 64 << 10, MaxTokens: 256}

// ProtocolError is a problem with the client's input that the session
// answers with BAD (tagged when Tag is set). Fatal errors end the
// connection with BYE after the answer.
type ProtocolError struct {
	Tag   string
	Code  string // response code without brackets, or ""
	Msg   string
	Fatal bool
	// Bye is set for input that is not IMAP at all: the session answers
	// only with BYE.
	Bye bool
}

func (e *ProtocolError) Error() string { return "imap: " + e.Msg }

// Rejection is returned by a LiteralFunc to refuse a command as soon as its
// first literal is announced: the session answers with the tagged Status,
// Code and Msg instead of "+" (RFC 9051 §7.6).
type Rejection struct {
	Status string // "NO" or "BAD"
	Code   string
	Msg    string
}

func (r *Rejection) Error() string { return "imap: rejected: " + r.Msg }

// RejectedError carries a Rejection together with the command's tag.
type RejectedError struct {
	Tag string
	*Rejection
}

// LiteralFunc is called when the command being read announces a literal.
// cmd holds the tag, name and the arguments read so far. It returns nil to
// accept; for a synchronizing literal the function must then send the
// continuation request ("+ ...") itself. It returns a *Rejection to refuse
// the command.
type LiteralFunc func(cmd *Command, n int64, nonSync bool) error

// Reader reads pre-auth commands from a buffered connection.
type Reader struct {
	R   *bufio.Reader
	Lim Limits
	buf []byte
	// tail keeps the first and last octets of a line that was too long to
	// keep, so that its tag and a literal header at its end are still
	// seen. Allocated on the first over-long line only.
	tail *lineBuf
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its CRLF. The returned slice is
// valid until the next call. A line longer than max is skipped to its end
// (only its last octets are kept, in r.tail) and errLineTooLong returned.
// limit excludes the CRLF.
func (r *Reader) readLine(limit int) (line []byte, size int, err error) {
	r.buf = r.buf[:0]
	for {
		frag, err := r.R.ReadSlice('\n')
		size += len(frag)
		if len(r.buf)+len(frag) > limit+2 {
			if r.tail == nil {
				r.tail = new(lineBuf)
			}
			r.tail.reset()
			r.tail.add(r.buf) // keeps only the head (for the tag) and the tail
			r.tail.add(frag)
			// Skip the rest of the over-long line without storing it.
			for errors.Is(err, bufio.ErrBufferFull) {
				frag, err = r.R.ReadSlice('\n')
				size += len(frag)
				r.tail.add(frag)
			}
			if err != nil {
				return nil, size, err
			}
			return nil, size, errLineTooLong
		}
		if err == nil {
			if len(r.buf) == 0 {
				return TrimCRLF(frag), size, nil
			}
			r.buf = append(r.buf, frag...)
			return TrimCRLF(r.buf), size, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF && size > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, size, err
		}
		r.buf = append(r.buf, frag...)
	}
}

// looksLikeNonIMAP spots input that is clearly another protocol: an HTTP
// request, or NUL (never valid outside a literal8, RFC 9051 §9 note 3).
// Other control characters may appear in quoted strings; the tokenizer
// refuses them in atoms.
func looksLikeNonIMAP(line []byte) bool {
	if bytes.IndexByte(line, 0) >= 0 {
		return true
	}
	return bytes.HasSuffix(line, []byte(" HTTP/1.1")) || bytes.HasSuffix(line, []byte(" HTTP/1.0")) ||
		bytes.HasSuffix(line, []byte(" HTTP/2.0"))
}

// ReadCommand reads one whole command: its lines and the literals they
// announce. onLiteral may be nil: every literal is then accepted (only
// useful for non-synchronizing input, in tests).
//
// A literal header is recognized at the end of every line, as RFC 7888 §3
// asks, before the line is tokenized: whatever is wrong with the line, a
// non-synchronizing literal that follows it is skipped with the rest of its
// command, so the stream never falls out of step with the client.
func (r *Reader) ReadCommand(onLiteral LiteralFunc) (*Command, error) {
	// TLS (or SSLv2) on the plaintext port rarely sends a LF: answer the
	// first octet instead of waiting for a line that never comes.
	if b, err := r.R.Peek(1); err == nil && (b[0] == 0x16 || b[0] == 0x80) {
		return nil, &ProtocolError{Msg: "This is an IMAP server", Bye: true}
	}
	cmd := &Command{}
	cmd.Args = cmd.args[:0]
	line, size, err := r.readLine(r.Lim.MaxLine)
	cmd.Size = size
	if err == errLineTooLong {
		pe := &ProtocolError{Msg: "Line too long"}
		if tag, _ := FirstWord(r.tail.Head()); ValidTag(tag) && len(tag) <= 64 && len(tag) < r.tail.headLen {
			pe.Tag = string(tag)
		}
		return nil, r.fail(nil, pe)
	}
	if err != nil {
		return nil, err
	}
	if looksLikeNonIMAP(line) {
		return nil, &ProtocolError{Msg: "This is an IMAP server", Bye: true}
	}
	tag, rest := FirstWord(line)
	if !ValidTag(tag) {
		return nil, r.fail(line, &ProtocolError{Msg: "Invalid tag"})
	}
	cmd.Tag = string(tag)
	name, rest := FirstWord(rest)
	if len(name) == 0 {
		return nil, r.fail(line, &ProtocolError{Tag: cmd.Tag, Msg: "Missing command"})
	}
	for _, c := range name {
		if !IsAtomChar(c) {
			return nil, r.fail(line, &ProtocolError{Tag: cmd.Tag, Msg: "Invalid command name"})
		}
	}
	if cmd.Name = commandName(name); cmd.Name == "" { // longer than any command
		cmd.Name = string(bytes.ToUpper(name))
	}
	literals := 0
	for {
		n, nonSync, binary, start, lit := LiteralHeader(rest)
		if lit {
			if start > 0 && rest[start-1] != ' ' && rest[start-1] != '(' {
				return nil, r.fail(line, &ProtocolError{Tag: cmd.Tag, Msg: "Invalid literal"})
			}
			if binary {
				return nil, r.fail(line, &ProtocolError{Tag: cmd.Tag, Msg: "Binary literals are not accepted before login"})
			}
			rest = rest[:start]
		}
		if err := r.tokenize(cmd, rest); err != nil {
			return nil, r.fail(line, err)
		}
		if !lit {
			return cmd, nil
		}
		literals++
		if n > int64(r.Lim.MaxNonSync) && nonSync {
			return nil, &ProtocolError{Tag: cmd.Tag, Code: "TOOBIG", Msg: "Literal too big", Fatal: true}
		}
		tooBig := n > int64(r.Lim.MaxLiteral) || int64(cmd.Size)+n > int64(r.Lim.MaxCommand) || literals > r.Lim.MaxTokens
		if tooBig && !nonSync {
			return nil, &ProtocolError{Tag: cmd.Tag, Code: "TOOBIG", Msg: "Literal too big"}
		}
		var rejected error
		if tooBig {
			rejected = &ProtocolError{Tag: cmd.Tag, Code: "TOOBIG", Msg: "Literal too big"}
		} else if onLiteral != nil {
			if err := onLiteral(cmd, n, nonSync); err != nil {
				var rej *Rejection
				if !errors.As(err, &rej) {
					return nil, err
				}
				rejected = &RejectedError{Tag: cmd.Tag, Rejection: rej}
				if !nonSync {
					return nil, rejected
				}
			}
		}
		if rejected != nil {
			// A non-synchronizing literal is on its way: skip it and the
			// rest of the command before answering.
			return nil, r.skipCommand(cmd.Tag, n, rejected)
		}
		lit8 := make([]byte, n)
		if _, err := io.ReadFull(r.R, lit8); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		cmd.Size += int(n)
		cmd.Args = append(cmd.Args, Token{Kind: TokLiteral, Value: lit8})
		line, size, err = r.readLine(r.Lim.MaxLine)
		cmd.Size += size
		if err == errLineTooLong {
			return nil, r.fail(nil, &ProtocolError{Tag: cmd.Tag, Msg: "Line too long"})
		}
		if err != nil {
			return nil, err
		}
		if cmd.Size > r.Lim.MaxCommand {
			return nil, r.fail(line, &ProtocolError{Tag: cmd.Tag, Msg: "Command too long"})
		}
		rest = line
	}
}

// fail returns answer for a command line that cannot be used. If the line
// (nil: the over-long line just skipped, whose tail is in r.tail) ends
// with a non-synchronizing literal header, the literal and the rest of the
// command are skipped first: the client sends them without waiting.
func (r *Reader) fail(line []byte, answer error) error {
	if line == nil {
		line = TrimCRLF(r.tail.tail[:r.tail.tailLen])
	}
	n, nonSync, _, _, ok := LiteralHeader(line)
	if !ok || !nonSync {
		return answer
	}
	tag := ""
	var pe *ProtocolError
	if errors.As(answer, &pe) {
		tag = pe.Tag
	}
	return r.skipCommand(tag, n, answer)
}

// skipCommand discards a non-synchronizing literal of n octets and the rest
// of its command (more lines, more non-synchronizing literals), then
// returns answer. The pre-auth deadline bounds how long this can take.
func (r *Reader) skipCommand(tag string, n int64, answer error) error {
	for {
		if n > int64(r.Lim.MaxNonSync) {
			return &ProtocolError{Tag: tag, Code: "TOOBIG", Msg: "Literal too big", Fatal: true}
		}
		if _, err := r.R.Discard(int(n)); err != nil {
			return err
		}
		line, _, err := r.readLine(r.Lim.MaxLine)
		if err == errLineTooLong {
			line = TrimCRLF(r.tail.tail[:r.tail.tailLen])
		} else if err != nil {
			return err
		}
		var nonSync, ok bool
		n, nonSync, _, _, ok = LiteralHeader(line)
		if !ok || !nonSync {
			return answer
		}
	}
}

// tokenize appends the tokens of one line segment (its literal header
// already cut off) to cmd.
func (r *Reader) tokenize(cmd *Command, s []byte) error {
	syntax := func(msg string) error { return &ProtocolError{Tag: cmd.Tag, Msg: msg} }
	for i := 0; i < len(s); {
		if len(cmd.Args) >= r.Lim.MaxTokens {
			return syntax("Too many arguments")
		}
		switch c := s[i]; c {
		case ' ':
			i++
		case '(':
			cmd.Args = append(cmd.Args, Token{Kind: TokLParen})
			i++
		case ')':
			cmd.Args = append(cmd.Args, Token{Kind: TokRParen})
			i++
		case '"':
			v, next, ok := unquote(s, i)
			if !ok {
				return syntax("Invalid quoted string")
			}
			cmd.Args = append(cmd.Args, Token{Kind: TokQuoted, Value: v})
			i = next
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '(' && s[j] != ')' && s[j] != '"' {
				if s[j] < 0x20 || s[j] == 0x7f {
					return syntax("Invalid characters in atom")
				}
				if s[j] == '{' {
					return syntax("Invalid literal")
				}
				j++
			}
			cmd.Args = append(cmd.Args, Token{Kind: TokAtom, Value: append([]byte(nil), s[i:j]...)})
			i = j
		}
	}
	return nil
}

// unquote parses the quoted string starting at s[i] (a '"'). Only \" and
// \\ are valid escapes (RFC 9051 §9 quoted-specials).
func unquote(s []byte, i int) (v []byte, next int, ok bool) {
	v = []byte{}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; c {
		case '"':
			return v, j + 1, true
		case '\\':
			if j+1 >= len(s) || (s[j+1] != '"' && s[j+1] != '\\') {
				return nil, 0, false
			}
			j++
			v = append(v, s[j])
		case '\r', '\n', 0:
			return nil, 0, false
		default:
			v = append(v, c)
		}
	}
	return nil, 0, false
}

// String renders a command for debugging without its argument values (they
// may be credentials).
func (c *Command) String() string {
	return fmt.Sprintf("%s %s (%d args, %d bytes)", c.Tag, c.Name, len(c.Args), c.Size)
}

// ReadLine reads one line (an AUTHENTICATE continuation, say) bounded by
// Lim.MaxLine. The result is a copy, never nil.
func (r *Reader) ReadLine() ([]byte, error) {
	line, _, err := r.readLine(r.Lim.MaxLine)
	if err == errLineTooLong {
		return nil, &ProtocolError{Msg: "Line too long"}
	}
	if err != nil {
		return nil, err
	}
	return append([]byte{}, line...), nil
}

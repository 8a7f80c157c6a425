package imapwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// testLimits are small enough that every limit is easy to reach.
var testLimits = Limits{MaxLine: 64, MaxLiteral: 16, MaxNonSync: 32, MaxCommand: 200, MaxTokens: 12}

// renderCommand renders a command as `TAG NAME args #size`: atoms bare,
// quoted strings as q"…", literals as l"…", parens as ( and ).
func renderCommand(c *Command) string {
	var b strings.Builder
	b.WriteString(c.Tag + " " + c.Name)
	for _, a := range c.Args {
		b.WriteByte(' ')
		b.WriteString(renderToken(a))
	}
	fmt.Fprintf(&b, " #%d", c.Size)
	return b.String()
}

func renderToken(a Token) string {
	switch a.Kind {
	case TokAtom:
		return string(a.Value)
	case TokQuoted:
		return "q" + strconv.Quote(string(a.Value))
	case TokLiteral:
		return "l" + strconv.Quote(string(a.Value))
	case TokLParen:
		return "("
	case TokRParen:
		return ")"
	}
	return fmt.Sprintf("?%d", a.Kind)
}

// renderErr renders what ReadCommand returned instead of a command.
func renderErr(err error) string {
	var pe *ProtocolError
	var rej *RejectedError
	switch {
	case err == nil:
		return "<nil>"
	case errors.As(err, &rej):
		return fmt.Sprintf("REJECT[%s] %s %s %s", rej.Tag, rej.Status, rej.Code, rej.Msg)
	case errors.As(err, &pe):
		s := fmt.Sprintf("BAD[%s] %s %s", pe.Tag, pe.Code, pe.Msg)
		if pe.Fatal {
			s += " FATAL"
		}
		if pe.Bye {
			s += " BYE"
		}
		return s
	case err == io.EOF:
		return "EOF"
	case err == io.ErrUnexpectedEOF:
		return "UEOF"
	}
	return "ERR " + err.Error()
}

// literalLog is a LiteralFunc that records its calls and refuses the
// commands named in reject.
type literalLog struct {
	calls  []string
	reject map[string]error
}

func (l *literalLog) onLiteral(cmd *Command, n int64, nonSync bool) error {
	kind := "sync"
	if nonSync {
		kind = "nonsync"
	}
	l.calls = append(l.calls, fmt.Sprintf("%s %s %d %s args=%d", cmd.Tag, cmd.Name, n, kind, len(cmd.Args)))
	return l.reject[cmd.Name]
}

var errHook = errors.New("hook failed")

type readCase struct {
	name   string
	in     string
	lim    *Limits          // nil: testLimits
	reject map[string]error // commands the LiteralFunc refuses
	want   []string         // one rendered command or error per ReadCommand call; "x|y" accepts either
	calls  []string         // LiteralFunc calls, nil: none
	rest   *string          // input left unread after the calls, nil: not checked
	failAt int              // the LiteralFunc returns errHook on this call (1-based)
}

func ptr(s string) *string { return &s }

var rejectLoginNO = map[string]error{"LOGIN": &Rejection{Status: "NO", Code: "PRIVACYREQUIRED", Msg: "no plaintext"}}

var readCases = []readCase{
	// Atoms and names.
	{
		name: "atoms",
		in:   "a1 NOOP\r\nA2 capability\r\na LOGIN user pass\r\n",
		want: []string{"a1 NOOP #9", "A2 CAPABILITY #15", "a LOGIN user pass #19", "EOF"},
	},
	{
		name: "name upper-cased, tag kept",
		in:   "Tag.1 LoGiN User PASS\r\n",
		want: []string{"Tag.1 LOGIN User PASS #23", "EOF"},
	},
	{
		name: "tag with ] and ~",
		in:   "a]~ NOOP\r\n",
		want: []string{"a]~ NOOP #10", "EOF"},
	},
	{
		name: "atom specials that the reader tolerates",
		in:   "a LIST \"\" %*]\\Seen\r\n",
		want: []string{`a LIST q"" %*]\Seen #20`, "EOF"},
	},
	{
		name: "extra spaces between arguments",
		in:   "a LOGIN  user   pass \r\n",
		want: []string{"a LOGIN user pass #23", "EOF"},
	},
	{
		name: "8-bit atom",
		in:   "a LOGIN us\xc3\xa9r pass\r\n",
		want: []string{"a LOGIN us\xc3\xa9r pass #20", "EOF"},
	},
	// Quoted strings.
	{
		name: "quoted with escapes",
		in:   `a LOGIN "us\"er" "p\\a ss"` + "\r\n",
		want: []string{`a LOGIN q"us\"er" q"p\\a ss" #28`, "EOF"},
	},
	{
		name: "empty quoted",
		in:   `a LOGIN "" ""` + "\r\n",
		want: []string{`a LOGIN q"" q"" #15`, "EOF"},
	},
	{
		name: "quoted UTF-8, tab, specials",
		in:   "a LOGIN \"caf\xc3\xa9\t(){}%*]\" x\r\n",
		want: []string{"a LOGIN q\"caf\u00e9\\t(){}%*]\" x #27", "EOF"},
	},
	{
		name: "quoted adjacent to parens and atoms",
		in:   "a ID (\"a\"\"b\"x)\r\n",
		want: []string{`a ID ( q"a" q"b" x ) #16`, "EOF"},
	},
	{
		name: "invalid escape",
		in:   `a LOGIN "a\b" x` + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid quoted string", "b NOOP #8", "EOF"},
	},
	{
		name: "escaped letter",
		in:   `a LOGIN "\n" x` + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid quoted string", "b NOOP #8", "EOF"},
	},
	{
		name: "backslash at end of line",
		in:   `a LOGIN "abc\` + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid quoted string", "b NOOP #8", "EOF"},
	},
	{
		name: "unterminated quote",
		in:   `a LOGIN user "pass` + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid quoted string", "b NOOP #8", "EOF"},
	},
	{
		name: "escaped closing quote leaves it unterminated",
		in:   `a LOGIN "pass\"` + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid quoted string", "b NOOP #8", "EOF"},
	},
	// Parenthesized lists.
	{
		name: "ID list",
		in:   `a ID ("name" "Thunderbird" "version" "115.0" "os" NIL)` + "\r\n",
		want: []string{`a ID ( q"name" q"Thunderbird" q"version" q"115.0" q"os" NIL ) #56`, "EOF"},
	},
	{
		name: "ID NIL",
		in:   "a ID NIL\r\n",
		want: []string{"a ID NIL #10", "EOF"},
	},
	{
		name: "nested and empty parens",
		in:   "a X ((a) () b)\r\n",
		want: []string{"a X ( ( a ) ( ) b ) #16", "EOF"},
	},
	// Literals.
	{
		name:  "sync literals",
		in:    "a LOGIN {4}\r\nuser {4}\r\npass\r\n",
		want:  []string{`a LOGIN l"user" l"pass" #29`, "EOF"},
		calls: []string{"a LOGIN 4 sync args=0", "a LOGIN 4 sync args=1"},
	},
	{
		name:  "non-sync literals",
		in:    "a LOGIN {4+}\r\nuser {4+}\r\npass\r\n",
		want:  []string{`a LOGIN l"user" l"pass" #31`, "EOF"},
		calls: []string{"a LOGIN 4 nonsync args=0", "a LOGIN 4 nonsync args=1"},
	},
	{
		name:  "mixed atom, quoted and literal",
		in:    "a LOGIN user {4}\r\npass\r\nb NOOP\r\n",
		want:  []string{`a LOGIN user l"pass" #24`, "b NOOP #8", "EOF"},
		calls: []string{"a LOGIN 4 sync args=1"},
	},
	{
		name:  "zero-length literals",
		in:    "a LOGIN {0}\r\n {0+}\r\n\r\n",
		want:  []string{`a LOGIN l"" l"" #22`, "EOF"},
		calls: []string{"a LOGIN 0 sync args=0", "a LOGIN 0 nonsync args=1"},
	},
	{
		name:  "literal octets are not parsed",
		in:    "a LOGIN {8}\r\nx\r\n\x00\"{1} y\r\n",
		want:  []string{`a LOGIN l"x\r\n\x00\"{1}" y #25`, "EOF"},
		calls: []string{"a LOGIN 8 sync args=0"},
	},
	{
		name:  "literal with CRLF content that looks like a command",
		in:    "a LOGIN {8}\r\nb LOGOUT {3+}\r\nabc\r\nc NOOP\r\n",
		want:  []string{`a LOGIN l"b LOGOUT" l"abc" #33`, "c NOOP #8", "EOF"},
		calls: []string{"a LOGIN 8 sync args=0", "a LOGIN 3 nonsync args=1"},
	},
	{
		name:  "several literals in a list",
		in:    "a ID (\"name\" {3}\r\nfoo \"os\" {2+}\r\nxy)\r\n",
		want:  []string{`a ID ( q"name" l"foo" q"os" l"xy" ) #38`, "EOF"},
		calls: []string{"a ID 3 sync args=2", "a ID 2 nonsync args=4"},
	},
	{
		name:  "literal right after paren",
		in:    "a ID ({1}\r\nx {1}\r\ny)\r\n",
		want:  []string{`a ID ( l"x" l"y" ) #22`, "EOF"},
		calls: []string{"a ID 1 sync args=1", "a ID 1 sync args=2"},
	},
	{
		name:  "literal of exactly MaxLiteral",
		in:    "a LOGIN u {16}\r\n0123456789abcdef\r\n",
		want:  []string{`a LOGIN u l"0123456789abcdef" #34`, "EOF"},
		calls: []string{"a LOGIN 16 sync args=1"},
	},
	{
		name:  "literal with leading zeros",
		in:    "a LOGIN u {002}\r\nab\r\n",
		want:  []string{`a LOGIN u l"ab" #21`, "EOF"},
		calls: []string{"a LOGIN 2 sync args=1"},
	},
	// Limits.
	{
		name: "sync literal too big: BAD, no + and nothing read",
		in:   "a LOGIN user {17}\r\nb NOOP\r\n",
		want: []string{"BAD[a] TOOBIG Literal too big", "b NOOP #8", "EOF"},
	},
	{
		name: "sync literal with a 19-digit count",
		in:   "a LOGIN user {9223372036854775807}\r\nb NOOP\r\n",
		want: []string{"BAD[a] TOOBIG Literal too big", "b NOOP #8", "EOF"},
	},
	{
		name: "non-sync literal over MaxNonSync: fatal, nothing read",
		in:   "a LOGIN user {33+}\r\n" + strings.Repeat("x", 33) + "\r\n",
		want: []string{"BAD[a] TOOBIG Literal too big FATAL"},
		rest: ptr(strings.Repeat("x", 33) + "\r\n"),
	},
	{
		name: "non-sync literal with a 19-digit count: fatal",
		in:   "a LOGIN user {9223372036854775807+}\r\nxxxx",
		want: []string{"BAD[a] TOOBIG Literal too big FATAL"},
		rest: ptr("xxxx"),
	},
	{
		name: "non-sync literal over MaxLiteral: skipped with the rest of the command",
		in:   "a LOGIN user {20+}\r\n" + strings.Repeat("x", 20) + " more {3+}\r\nabc\r\nb NOOP\r\n",
		want: []string{"BAD[a] TOOBIG Literal too big", "b NOOP #8", "EOF"},
	},
	{
		name:  "command too big for one more sync literal",
		in:    "a ID {16}\r\n" + strings.Repeat(strings.Repeat("z", 16)+" {16}\r\n", 8) + "b NOOP\r\n",
		want:  []string{"BAD[a] TOOBIG Literal too big", "b NOOP #8", "EOF"},
		calls: []string{"a ID 16 sync args=0", "a ID 16 sync args=1", "a ID 16 sync args=2", "a ID 16 sync args=3", "a ID 16 sync args=4", "a ID 16 sync args=5", "a ID 16 sync args=6", "a ID 16 sync args=7"},
	},
	{
		name: "command too long after a line",
		in: "a ID {1}\r\n" + strings.Repeat("x"+strings.Repeat("y", 58)+" {1}\r\n", 3) +
			"b NOOP\r\n",
		want:  []string{"BAD[a]  Command too long", "b NOOP #8", "EOF"},
		calls: []string{"a ID 1 sync args=0", "a ID 1 sync args=2", "a ID 1 sync args=4"},
	},
	{
		name: "too many arguments",
		in:   "a ID" + strings.Repeat(" x", 13) + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Too many arguments", "b NOOP #8", "EOF"},
	},
	{
		name: "exactly MaxTokens arguments",
		in:   "a ID" + strings.Repeat(" x", 12) + "\r\n",
		want: []string{"a ID" + strings.Repeat(" x", 12) + " #30", "EOF"},
	},
	{
		name: "line of exactly MaxLine octets",
		in:   "a LOGIN " + strings.Repeat("u", 56) + "\r\n",
		want: []string{"a LOGIN " + strings.Repeat("u", 56) + " #66", "EOF"},
	},
	{
		name: "line of exactly MaxLine octets, bare LF",
		in:   "a LOGIN " + strings.Repeat("u", 56) + "\n",
		want: []string{"a LOGIN " + strings.Repeat("u", 56) + " #65", "EOF"},
	},
	{
		name: "line one octet too long",
		in:   "a LOGIN " + strings.Repeat("u", 57) + "\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Line too long", "b NOOP #8", "EOF"},
	},
	{
		name: "over-long line",
		in:   "a LOGIN " + strings.Repeat("u", 1000) + " pass\r\nb NOOP\r\nc NOOP\r\n",
		want: []string{"BAD[a]  Line too long", "b NOOP #8", "c NOOP #8", "EOF"},
	},
	{
		name: "several over-long lines in a row",
		in:   strings.Repeat(strings.Repeat("v", 100)+"\r\n", 3) + "b NOOP\r\n",
		want: []string{"BAD[]  Line too long", "BAD[]  Line too long", "BAD[]  Line too long", "b NOOP #8", "EOF"},
	},
	{
		name: "over-long line that would be binary junk",
		in:   strings.Repeat("\x00\x01", 100) + "\r\nb NOOP\r\n",
		want: []string{"BAD[]  Line too long", "b NOOP #8", "EOF"},
	},
	{
		name:  "over-long line after a literal",
		in:    "a LOGIN {2}\r\nab " + strings.Repeat("y", 70) + "\r\nb NOOP\r\n",
		want:  []string{"BAD[a]  Line too long", "b NOOP #8", "EOF"},
		calls: []string{"a LOGIN 2 sync args=0"},
	},
	{
		name: "over-long line cut by EOF",
		in:   "a LOGIN " + strings.Repeat("u", 100),
		want: []string{"EOF|UEOF"},
	},
	// Rejections through the LiteralFunc.
	{
		name:   "rejected sync literal: nothing read after the header line",
		in:     "a LOGIN {4}\r\nb NOOP\r\n",
		reject: rejectLoginNO,
		want:   []string{"REJECT[a] NO PRIVACYREQUIRED no plaintext"},
		calls:  []string{"a LOGIN 4 sync args=0"},
		rest:   ptr("b NOOP\r\n"),
	},
	{
		name:   "rejected sync literal, then the next command",
		in:     "a LOGIN {4}\r\nb NOOP\r\n",
		reject: rejectLoginNO,
		want:   []string{"REJECT[a] NO PRIVACYREQUIRED no plaintext", "b NOOP #8", "EOF"},
		calls:  []string{"a LOGIN 4 sync args=0"},
	},
	{
		name:   "rejected non-sync literal: rest of the command skipped",
		in:     "a LOGIN {4+}\r\nuser {4+}\r\npass\r\nb NOOP\r\n",
		reject: rejectLoginNO,
		want:   []string{"REJECT[a] NO PRIVACYREQUIRED no plaintext", "b NOOP #8", "EOF"},
		calls:  []string{"a LOGIN 4 nonsync args=0"},
	},
	{
		name:   "rejected non-sync literal whose content looks like a command",
		in:     "a LOGIN user {10+}\r\nc LOGOUT\r\n\r\nb NOOP\r\n",
		reject: rejectLoginNO,
		want:   []string{"REJECT[a] NO PRIVACYREQUIRED no plaintext", "b NOOP #8", "EOF"},
		calls:  []string{"a LOGIN 10 nonsync args=1"},
	},
	{
		name:   "rejected non-sync literal followed by a sync literal",
		in:     "a LOGIN {4+}\r\nuser {4}\r\nb NOOP\r\n",
		reject: rejectLoginNO,
		want:   []string{"REJECT[a] NO PRIVACYREQUIRED no plaintext", "b NOOP #8", "EOF"},
		calls:  []string{"a LOGIN 4 nonsync args=0"},
	},
	{
		name:   "rejected non-sync literal, later line too long",
		in:     "a LOGIN {4+}\r\nuser " + strings.Repeat("p", 80) + "\r\nb NOOP\r\n",
		reject: rejectLoginNO,
		want:   []string{"REJECT[a] NO PRIVACYREQUIRED no plaintext", "b NOOP #8", "EOF"},
		calls:  []string{"a LOGIN 4 nonsync args=0"},
	},
	{
		name:   "rejection with BAD",
		in:     "a SELECT {5}\r\nb NOOP\r\n",
		reject: map[string]error{"SELECT": &Rejection{Status: "BAD", Msg: "Unexpected literal."}},
		want:   []string{"REJECT[a] BAD  Unexpected literal.", "b NOOP #8", "EOF"},
		calls:  []string{"a SELECT 5 sync args=0"},
	},
	{
		name:   "LiteralFunc fails on the second literal",
		in:     "a ID ({1}\r\nx {1}\r\nb NOOP\r\n",
		failAt: 2,
		want:   []string{"ERR hook failed", "b NOOP #8", "EOF"},
		calls:  []string{"a ID 1 sync args=1", "a ID 1 sync args=2"},
	},
	{
		name:   "LiteralFunc error that is not a Rejection is returned as is",
		in:     "a LOGIN {4}\r\nuser\r\n",
		reject: map[string]error{"LOGIN": errHook},
		want:   []string{"ERR hook failed"},
		calls:  []string{"a LOGIN 4 sync args=0"},
		rest:   ptr("user\r\n"),
	},
	// Input that is not IMAP.
	{
		name: "HTTP/1.1 request",
		in:   "GET / HTTP/1.1\r\nHost: imap.example.com\r\n\r\n",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "HTTP/1.0 request",
		in:   "POST /login HTTP/1.0\r\n\r\n",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "TLS ClientHello with a LF in it",
		in:   "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x0a",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "SSLv2 ClientHello",
		in:   "\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10\n",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "NUL in a command",
		in:   "a LOGIN us\x00er pass\r\n",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "NUL only",
		in:   "\x00\x00\x00\n",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "NUL in a quoted string",
		in:   "a LOGIN \"us\x00er\" pass\r\n",
		want: []string{"BAD[]  This is an IMAP server BYE"},
	},
	{
		name: "control character in the first line",
		in:   "a LOGIN us\x01er pass\r\n",
		want: []string{"BAD[a]  Invalid characters in atom", "EOF"},
	},
	{
		name: "bare CR inside a line",
		in:   "a NOOP\rb NOOP\r\n",
		want: []string{"BAD[a]  Invalid command name", "EOF"},
	},
	// CTL and other bad characters.
	{
		name: "tab in an atom",
		in:   "a LOGIN us\ter pass\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid characters in atom", "b NOOP #8", "EOF"},
	},
	{
		name: "DEL in an atom",
		in:   "a LOGIN us\x7fer pass\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid characters in atom", "b NOOP #8", "EOF"},
	},
	{
		name:  "CTL in an atom on a line after a literal",
		in:    "a LOGIN {1}\r\nx us\x01er\r\nb NOOP\r\n",
		want:  []string{"BAD[a]  Invalid characters in atom", "b NOOP #8", "EOF"},
		calls: []string{"a LOGIN 1 sync args=0"},
	},
	{
		name:  "NUL after a literal",
		in:    "a LOGIN {1}\r\nx \x00\r\nb NOOP\r\n",
		want:  []string{"BAD[a]  Invalid characters in atom", "b NOOP #8", "EOF"},
		calls: []string{"a LOGIN 1 sync args=0"},
	},
	{
		name: "literal8 is refused before login",
		in:   "a LOGIN user ~{5}\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Binary literals are not accepted before login", "b NOOP #8", "EOF"},
	},
	{
		name: "two literal headers, the first one glued",
		in:   "a LOGIN {a {5}\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid literal", "b NOOP #8", "EOF"},
	},
	// Tags and names.
	{
		name: "invalid tags",
		in:   "a+b NOOP\r\n* NOOP\r\n+ x\r\n(a NOOP\r\na{ NOOP\r\n\r\n NOOP\r\nb NOOP\r\n",
		want: []string{"BAD[]  Invalid tag", "BAD[]  Invalid tag", "BAD[]  Invalid tag", "BAD[]  Invalid tag", "BAD[]  Invalid tag", "BAD[]  Invalid tag", "BAD[]  Invalid tag", "b NOOP #8", "EOF"},
	},
	{
		name: "8-bit tag",
		in:   "t\xc3\xa9 NOOP\r\nb NOOP\r\n",
		want: []string{"BAD[]  Invalid tag", "b NOOP #8", "EOF"},
	},
	{
		name: "missing command",
		in:   "a\r\na \r\na  NOOP\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Missing command", "BAD[a]  Missing command", "BAD[a]  Missing command", "b NOOP #8", "EOF"},
	},
	{
		name: "invalid command names",
		in:   "a NO{OP\r\na LOG\"IN x\r\na ]NOOP\r\na NO%P\r\na NOOP(\r\nb NOOP\r\n",
		want: []string{"BAD[a]  Invalid command name", "BAD[a]  Invalid command name", "BAD[a]  Invalid command name", "BAD[a]  Invalid command name", "BAD[a]  Invalid command name", "b NOOP #8", "EOF"},
	},
	// EOF.
	{
		name: "empty input",
		in:   "",
		want: []string{"EOF", "EOF"},
	},
	{
		name: "EOF in the first line",
		in:   "a NOO",
		want: []string{"UEOF"},
	},
	{
		name:  "EOF mid-literal",
		in:    "a LOGIN {5}\r\nus",
		want:  []string{"UEOF"},
		calls: []string{"a LOGIN 5 sync args=0"},
	},
	{
		name:  "EOF right after a literal's header",
		in:    "a LOGIN {5+}\r\n",
		want:  []string{"UEOF"},
		calls: []string{"a LOGIN 5 nonsync args=0"},
	},
	{
		name:  "EOF in the line after a literal",
		in:    "a LOGIN {2}\r\nab x",
		want:  []string{"UEOF"},
		calls: []string{"a LOGIN 2 sync args=0"},
	},
	{
		name:  "EOF right after a literal",
		in:    "a LOGIN {2}\r\nab",
		want:  []string{"EOF|UEOF"},
		calls: []string{"a LOGIN 2 sync args=0"},
	},
	{
		name:   "EOF while skipping a rejected non-sync literal",
		in:     "a LOGIN {4+}\r\nus",
		reject: rejectLoginNO,
		want:   []string{"EOF|UEOF"},
		calls:  []string{"a LOGIN 4 nonsync args=0"},
	},
	// Line endings.
	{
		name: "bare LF",
		in:   "a LOGIN user pass\nb NOOP\n",
		want: []string{"a LOGIN user pass #18", "b NOOP #7", "EOF"},
	},
	{
		name:  "bare LF around literals",
		in:    "a LOGIN {2}\nab {2+}\ncd\nb NOOP\r\n",
		want:  []string{`a LOGIN l"ab" l"cd" #23`, "b NOOP #8", "EOF"},
		calls: []string{"a LOGIN 2 sync args=0", "a LOGIN 2 nonsync args=1"},
	},
}

// readerVariants are the ways the input reaches ReadCommand: the result
// must not depend on the bufio size or on short reads.
var readerVariants = []struct {
	name string
	mk   func(io.Reader) *bufio.Reader
}{
	{"bufio4096", func(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 4096) }},
	{"bufio16", func(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 16) }},
	{"bufio23/onebyte", func(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(iotest.OneByteReader(r), 23) }},
	{"bufio64/halfreader", func(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(iotest.HalfReader(r), 64) }},
}

func TestReadCommand(t *testing.T) {
	for _, tc := range readCases {
		for _, v := range readerVariants {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				runReadCase(t, tc, v.mk)
			})
		}
	}
}

func runReadCase(t *testing.T, tc readCase, mk func(io.Reader) *bufio.Reader) {
	t.Helper()
	lim := testLimits
	if tc.lim != nil {
		lim = *tc.lim
	}
	br := mk(strings.NewReader(tc.in))
	r := &Reader{R: br, Lim: lim}
	log := &literalLog{reject: tc.reject}
	onLiteral := log.onLiteral
	if tc.failAt > 0 {
		onLiteral = func(cmd *Command, n int64, nonSync bool) error {
			err := log.onLiteral(cmd, n, nonSync)
			if len(log.calls) == tc.failAt {
				return errHook
			}
			return err
		}
	}
	total := 0
	for i, want := range tc.want {
		cmd, err := r.ReadCommand(onLiteral)
		var got string
		if err != nil {
			if cmd != nil {
				t.Errorf("call %d: both a command and an error", i)
			}
			got = renderErr(err)
		} else {
			got = renderCommand(cmd)
			total += cmd.Size
		}
		if !matchAlt(got, want) {
			t.Errorf("call %d: got  %q\nwant %q", i, got, want)
		}
		if cap(r.buf) > 2*(lim.MaxLine+2)+br.Size() {
			t.Errorf("call %d: line buffer grew to %d", i, cap(r.buf))
		}
	}
	if total > len(tc.in) {
		t.Errorf("commands' sizes add up to %d, more than the %d input octets", total, len(tc.in))
	}
	if fmt.Sprint(log.calls) != fmt.Sprint(tc.calls) {
		t.Errorf("LiteralFunc calls:\ngot  %q\nwant %q", log.calls, tc.calls)
	}
	if tc.rest != nil {
		rest, _ := io.ReadAll(br)
		if string(rest) != *tc.rest {
			t.Errorf("unread input %q, want %q", rest, *tc.rest)
		}
	}
}

func matchAlt(got, want string) bool {
	for _, w := range strings.Split(want, "|") {
		if got == w {
			return true
		}
	}
	return false
}

// TestReadCommandSizeIsWire checks on every successful case that Size is
// the number of octets the command occupies: reading commands one by one
// consumes exactly the sum of their sizes.
func TestReadCommandSizeIsWire(t *testing.T) {
	inputs := []string{
		"a1 NOOP\r\nA2 capability\r\n",
		"a LOGIN {4}\r\nuser {4+}\r\npass\r\nb NOOP\n",
		"a ID (\"name\" {3}\r\nfoo \"os\" {2+}\r\nxy)\r\nc LOGOUT\r\n",
		"a LOGIN {0}\r\n {0+}\r\n\r\n",
	}
	for _, in := range inputs {
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		r := &Reader{R: br, Lim: testLimits}
		sum := 0
		for {
			cmd, err := r.ReadCommand(nil)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			sum += cmd.Size
		}
		if sum != len(in) {
			t.Errorf("%q: sizes add up to %d, want %d", in, sum, len(in))
		}
	}
}

// TestReadCommandValuesOwned checks that token values stay valid after
// later reads reuse the bufio and line buffers.
func TestReadCommandValuesOwned(t *testing.T) {
	in := "a LOGIN user \"pa ss\"\r\n" + "b LOGIN {3}\r\nxyz qq\r\n" + strings.Repeat("c NOOP ZZZZZZZZZZ\r\n", 50)
	r := &Reader{R: bufio.NewReaderSize(strings.NewReader(in), 16), Lim: testLimits}
	var cmds []*Command
	for {
		cmd, err := r.ReadCommand(nil)
		if err != nil {
			break
		}
		cmds = append(cmds, cmd)
	}
	if got := renderCommand(cmds[0]); got != `a LOGIN user q"pa ss" #22` {
		t.Errorf("first command changed to %q", got)
	}
	if got := renderCommand(cmds[1]); got != `b LOGIN l"xyz" qq #21` {
		t.Errorf("second command changed to %q", got)
	}
}

func TestCommandString(t *testing.T) {
	r := &Reader{R: bufio.NewReader(strings.NewReader("a LOGIN user secret\r\n")), Lim: testLimits}
	cmd, err := r.ReadCommand(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cmd.String()
	if strings.Contains(s, "secret") || strings.Contains(s, "user") {
		t.Errorf("String() = %q reveals arguments", s)
	}
	if s != "a LOGIN (2 args, 21 bytes)" {
		t.Errorf("String() = %q", s)
	}
}

func TestErrorStrings(t *testing.T) {
	pe := &ProtocolError{Msg: "Line too long"}
	if pe.Error() != "imap: Line too long" {
		t.Errorf("ProtocolError.Error() = %q", pe.Error())
	}
	var err error = &RejectedError{Tag: "a", Rejection: &Rejection{Status: "NO", Msg: "no"}}
	if err.Error() != "imap: rejected: no" {
		t.Errorf("RejectedError.Error() = %q", err.Error())
	}
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Status != "NO" || rej.Tag != "a" {
		t.Errorf("errors.As(RejectedError) failed")
	}
}

func TestReadLine(t *testing.T) {
	lim := Limits{MaxLine: 16}
	in := "dXNlcg==\r\n\r\n" + strings.Repeat("A", 40) + "\r\n" + strings.Repeat("B", 16) + "\n*\r\npartial"
	for _, v := range readerVariants {
		t.Run(v.name, func(t *testing.T) {
			r := &Reader{R: v.mk(strings.NewReader(in)), Lim: lim}
			want := []string{`"dXNlcg=="`, `""`, "BAD[]  Line too long", `"` + strings.Repeat("B", 16) + `"`, `"*"`, "UEOF", "EOF"}
			for i, w := range want {
				line, err := r.ReadLine()
				got := ""
				if err != nil {
					got = renderErr(err)
					if line != nil {
						t.Errorf("call %d: line %q with error", i, line)
					}
				} else {
					if line == nil {
						t.Errorf("call %d: nil line", i)
					}
					got = strconv.Quote(string(line))
				}
				if got != w {
					t.Errorf("call %d: got %s, want %s", i, got, w)
				}
			}
		})
	}
}

// TestReadLineCopies checks that ReadLine's result survives later reads.
func TestReadLineCopies(t *testing.T) {
	r := &Reader{R: bufio.NewReaderSize(strings.NewReader("first\r\nsecond\r\n"), 16), Lim: testLimits}
	a, _ := r.ReadLine()
	b, _ := r.ReadLine()
	if string(a) != "first" || string(b) != "second" {
		t.Errorf("got %q, %q", a, b)
	}
}

// TestReadCommandOverlongBounded feeds a 1 MiB line through a small
// bufio.Reader: the reader must skip it without holding it.
func TestReadCommandOverlongBounded(t *testing.T) {
	in := "a LOGIN " + strings.Repeat("x", 1<<20) + "\r\nb NOOP\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 4096)
	r := &Reader{R: br, Lim: DefaultLimits}
	_, err := r.ReadCommand(nil)
	if got := renderErr(err); got != "BAD[a]  Line too long" {
		t.Fatalf("got %s", got)
	}
	if cap(r.buf) > 2*(DefaultLimits.MaxLine+2)+4096 {
		t.Errorf("line buffer grew to %d for a %d limit", cap(r.buf), DefaultLimits.MaxLine)
	}
	cmd, err := r.ReadCommand(nil)
	if err != nil || cmd.Tag != "b" {
		t.Fatalf("next command: %v, %v", cmd, err)
	}
}

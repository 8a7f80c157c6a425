package imapwire

import (
	"bufio"
	"strings"
	"testing"
)

func TestLiteralHeader(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		ok      bool
		n       int64
		nonSync bool
		binary  bool
		start   int
	}{
		{name: "sync", line: `a LOGIN {5}`, ok: true, n: 5, start: 8},
		{name: "sync alone", line: `{5}`, ok: true, n: 5, start: 0},
		{name: "zero", line: `{0}`, ok: true, n: 0, start: 0},
		{name: "non-sync", line: `a LOGIN user {12+}`, ok: true, n: 12, nonSync: true, start: 13},
		{name: "non-sync zero", line: `{0+}`, ok: true, n: 0, nonSync: true},
		{name: "literal8", line: `a APPEND box ~{7}`, ok: true, n: 7, binary: true, start: 13},
		{name: "literal8 alone", line: `~{7}`, ok: true, n: 7, binary: true, start: 0},
		{name: "literal8 non-sync", line: `x ~{7+}`, ok: true, n: 7, nonSync: true, binary: true, start: 2},
		{name: "in parens", line: `a APPEND box CATENATE (TEXT {5}`, ok: true, n: 5, start: 28},
		{name: "glued to atom", line: `x{3}`, ok: true, n: 3, start: 1},
		{name: "leading zeros", line: `{0007}`, ok: true, n: 7},
		{name: "19 digits", line: `{0000000000000000001}`, ok: true, n: 1},
		{name: "max int64", line: `{9223372036854775807}`, ok: true, n: 9223372036854775807},
		{name: "max int64 non-sync", line: `{9223372036854775807+}`, ok: true, n: 9223372036854775807, nonSync: true},
		{name: "max int64 + 1", line: `{9223372036854775808}`},
		{name: "19 nines", line: `{9999999999999999999}`},
		{name: "20 digits", line: `{00000000000000000001}`},
		{name: "huge", line: `{123456789012345678901234567890}`},
		{name: "empty braces", line: `{}`},
		{name: "empty braces in line", line: `a LOGIN {}`},
		{name: "plus only", line: `{+}`},
		{name: "digit then letter", line: `{1a}`},
		{name: "letter then digit", line: `{a1}`},
		{name: "space inside", line: `{ 1}`},
		{name: "negative", line: `{-1}`},
		{name: "double plus", line: `{1++}`},
		{name: "plus first", line: `{+1}`},
		{name: "only close", line: `}`},
		{name: "only digits close", line: `12}`},
		{name: "no open brace", line: `a LOGIN 5}`},
		{name: "close twice", line: `{5}}`},
		{name: "not at end", line: `{5} `},
		{name: "with CRLF", line: "{5}\r\n"},
		{name: "empty", line: ``},
		{name: "short", line: `{}`},
		{name: "minus sign", line: `{5-}`},
		{name: "tilde without brace", line: `~5}`},
		{name: "brace junk before count", line: `{x5}`},
		{name: "only open", line: `{`},
		{name: "number only", line: `5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, nonSync, binary, start, ok := LiteralHeader([]byte(tt.line))
			if ok != tt.ok {
				t.Fatalf("LiteralHeader(%q) ok = %v, want %v", tt.line, ok, tt.ok)
			}
			if !ok {
				if n != 0 || nonSync || binary || start != 0 {
					t.Errorf("LiteralHeader(%q) = %d, %v, %v, %d on failure, want zero values", tt.line, n, nonSync, binary, start)
				}
				return
			}
			if n != tt.n || nonSync != tt.nonSync || binary != tt.binary || start != tt.start {
				t.Errorf("LiteralHeader(%q) = n %d nonSync %v binary %v start %d, want %d %v %v %d",
					tt.line, n, nonSync, binary, start, tt.n, tt.nonSync, tt.binary, tt.start)
			}
		})
	}
}

// TestLiteralHeaderNoOverflow checks every count with 1 to 19 digits made of
// the same digit: none may wrap to a negative or smaller number.
func TestLiteralHeaderNoOverflow(t *testing.T) {
	for d := byte('0'); d <= '9'; d++ {
		for k := 1; k <= 25; k++ {
			line := "{" + strings.Repeat(string(d), k) + "}"
			n, _, _, _, ok := LiteralHeader([]byte(line))
			if ok && n < 0 {
				t.Errorf("LiteralHeader(%q) = %d: negative", line, n)
			}
			if k > 19 && ok {
				t.Errorf("LiteralHeader(%q) accepted %d digits", line, k)
			}
			if k < 19 && !ok {
				t.Errorf("LiteralHeader(%q) refused %d digits", line, k)
			}
		}
	}
}

func TestTrimCRLF(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"\n", ""},
		{"\r\n", ""},
		{"\r", "\r"},
		{"a\r\n", "a"},
		{"a\n", "a"},
		{"a\r", "a\r"},
		{"a\n\n", "a\n"},
		{"a\r\n\r\n", "a\r\n"},
		{"a\r\r\n", "a\r"},
		{"abc", "abc"},
	}
	for _, tt := range tests {
		if got := string(TrimCRLF([]byte(tt.in))); got != tt.want {
			t.Errorf("TrimCRLF(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsAtomChar(t *testing.T) {
	// RFC 9051 §9: ATOM-CHAR = <any CHAR except atom-specials>,
	// atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
	// quoted-specials / resp-specials.
	specials := "(){ %*\"\\]"
	for c := 0; c < 256; c++ {
		want := c > 0x1f && c < 0x7f && !strings.ContainsRune(specials, rune(c))
		if got := IsAtomChar(byte(c)); got != want {
			t.Errorf("IsAtomChar(%#x) = %v, want %v", c, got, want)
		}
		if got, want := IsAStringChar(byte(c)), want || c == ']'; got != want {
			t.Errorf("IsAStringChar(%#x) = %v, want %v", c, got, want)
		}
	}
}

func TestValidTag(t *testing.T) {
	tests := []struct {
		tag  string
		want bool
	}{
		{"a", true},
		{"A001", true},
		{"a.b-c_d", true},
		{"]", true},
		{"a]", true},
		{"~x", true},
		{"!#$&'", true},
		{strings.Repeat("t", 300), true},
		{"", false},
		{"*", false},
		{"+", false},
		{"a+", false},
		{"+a", false},
		{"a b", false},
		{"a(", false},
		{"a)", false},
		{"a{", false},
		{"a%", false},
		{"a*", false},
		{`a"`, false},
		{`a\`, false},
		{"a\x00", false},
		{"a\t", false},
		{"a\r", false},
		{"a\x7f", false},
		{"a\x80", false},
		{"tag\xc3\xa9", false},
	}
	for _, tt := range tests {
		if got := ValidTag([]byte(tt.tag)); got != tt.want {
			t.Errorf("ValidTag(%q) = %v, want %v", tt.tag, got, tt.want)
		}
	}
}

func TestFirstWord(t *testing.T) {
	tests := []struct{ in, word, rest string }{
		{"", "", ""},
		{"a", "a", ""},
		{"a b", "a", "b"},
		{"a b c", "a", "b c"},
		{" a", "", "a"},
		{"a ", "a", ""},
		{"a  b", "a", " b"},
	}
	for _, tt := range tests {
		w, r := FirstWord([]byte(tt.in))
		if string(w) != tt.word || string(r) != tt.rest {
			t.Errorf("FirstWord(%q) = %q, %q, want %q, %q", tt.in, w, r, tt.word, tt.rest)
		}
	}
	if _, r := FirstWord([]byte("a")); r != nil {
		t.Errorf("FirstWord without space: rest = %q, want nil", r)
	}
}

func TestEqualFold(t *testing.T) {
	tests := []struct {
		b, w string
		want bool
	}{
		{"LOGIN", "LOGIN", true},
		{"login", "LOGIN", true},
		{"LoGiN", "LOGIN", true},
		{"", "", true},
		{"UID", "UID", true},
		{"logi", "LOGIN", false},
		{"logins", "LOGIN", false},
		{"", "LOGIN", false},
		{"LOGIN", "", false},
		{"lOgoUt", "LOGOUT", true},
		{"X-ID", "X-ID", true},
		{"x-id", "X-ID", true},
		// Only ASCII letters fold: '{' is not 'a'+26, '[' is not '{'.
		{"{", "[", false},
		{"[", "{", false},
		{"@", "`", false},
		{"`", "@", false},
		{"\xe9", "\xc9", false},
		// w must be upper case: a lower-case w never matches.
		{"login", "login", false},
		{"DONE", "DONE", true},
		{"done", "DONE", true},
		{"DONE ", "DONE", false},
	}
	for _, tt := range tests {
		if got := EqualFold([]byte(tt.b), tt.w); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tt.b, tt.w, got, tt.want)
		}
	}
}

func TestEqualFoldNoAlloc(t *testing.T) {
	b := []byte("capability")
	if n := testing.AllocsPerRun(100, func() { EqualFold(b, "CAPABILITY") }); n != 0 {
		t.Errorf("EqualFold allocates %v times", n)
	}
}

func TestNeedsLiteral(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"", false},
		{"user", false},
		{`pa"ss\word`, false},
		{"with space", false},
		{"tab\there", false},
		{"{5}", false},
		{"a\rb", true},
		{"a\nb", true},
		{"a\x00b", true},
		{"caf\xc3\xa9", true},
		{"\x80", true},
		{"\xff", true},
	}
	for _, tt := range tests {
		if got := NeedsLiteral(tt.s); got != tt.want {
			t.Errorf("NeedsLiteral(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestAppendQuoted(t *testing.T) {
	tests := []struct{ s, want string }{
		{"", `""`},
		{"user", `"user"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{`\"`, `"\\\""`},
		{"x y", `"x y"`},
	}
	for _, tt := range tests {
		if got := string(AppendQuoted([]byte("pre "), tt.s)); got != "pre "+tt.want {
			t.Errorf("AppendQuoted(%q) = %q, want %q", tt.s, got, "pre "+tt.want)
		}
	}
}

// TestQuotedRoundTrip checks that whatever NeedsLiteral lets through as a
// quoted string comes back unchanged from the package's own reader.
func TestQuotedRoundTrip(t *testing.T) {
	inputs := []string{
		"", "user", "p@ss word", `quote"inside`, `back\slash`, `\\\"\"\\`, `"`, `\`,
		"tab\there", "{5}", "{5+}", "(paren)", "*%]", "~{3}", "NIL", strings.Repeat(`\"`, 100),
	}
	// Every printable ASCII character alone and in a run.
	for c := byte(0x20); c < 0x7f; c++ {
		inputs = append(inputs, string(c), strings.Repeat(string(c), 3))
	}
	for _, s := range inputs {
		if NeedsLiteral(s) {
			t.Fatalf("NeedsLiteral(%q) = true", s)
		}
		line := string(AppendQuoted([]byte("a LOGIN "), s)) + " " + string(AppendQuoted(nil, s)) + "\r\n"
		r := &Reader{R: bufio.NewReader(strings.NewReader(line)), Lim: DefaultLimits}
		cmd, err := r.ReadCommand(nil)
		if err != nil {
			t.Errorf("round trip of %q: %q: %v", s, line, err)
			continue
		}
		if len(cmd.Args) != 2 || cmd.Args[0].Kind != TokQuoted || string(cmd.Args[0].Value) != s || string(cmd.Args[1].Value) != s {
			t.Errorf("round trip of %q: args %v", s, cmd.Args)
		}
		if cmd.Size != len(line) {
			t.Errorf("round trip of %q: Size %d, want %d", s, cmd.Size, len(line))
		}
	}
}

func TestTokenHelpers(t *testing.T) {
	for _, tt := range []struct {
		tok           Token
		isString, nil bool
	}{
		{Token{Kind: TokAtom, Value: []byte("NIL")}, true, true},
		{Token{Kind: TokAtom, Value: []byte("nil")}, true, true},
		{Token{Kind: TokAtom, Value: []byte("NILS")}, true, false},
		{Token{Kind: TokQuoted, Value: []byte("NIL")}, true, false},
		{Token{Kind: TokLiteral, Value: []byte("NIL")}, true, false},
		{Token{Kind: TokLParen}, false, false},
		{Token{Kind: TokRParen}, false, false},
	} {
		if got := tt.tok.IsString(); got != tt.isString {
			t.Errorf("%v.IsString() = %v", tt.tok, got)
		}
		if got := tt.tok.IsNIL(); got != tt.nil {
			t.Errorf("%v.IsNIL() = %v", tt.tok, got)
		}
	}
}

// Package imapwire is imapedge's one IMAP grammar: line framing, literal
// headers ({n}, {n+}, ~{n}), atoms, quoted strings and parenthesized lists.
// The pre-auth command reader and the splice-time framers both build on it,
// so there is one tokenizer, not three.
//
// Nothing in this package buffers a literal body it does not have to: the
// pre-auth reader holds only bounded literals (LOGIN, ID), and the framers
// only count literal octets.
package imapwire

import (
	"bytes"
)

// MaxLiteralCount bounds the octet count accepted in a literal header; RFC
// 9051 numbers are 63-bit, larger values are a protocol error.
const MaxLiteralCount = 1<<63 - 1

// LiteralHeader reports whether line (without its CRLF) ends with a literal
// header: "{n}", "{n+}", "~{n}" or "~{n+}" (RFC 9051 §4.3, RFC 7888 §3,
// RFC 3516). It returns the octet count, whether the literal is
// non-synchronizing, whether it is a literal8, and where the header starts.
func LiteralHeader(line []byte) (n int64, nonSync, binary bool, start int, ok bool) {
	l := len(line)
	if l < 3 || line[l-1] != '}' {
		return 0, false, false, 0, false
	}
	i := l - 2
	if line[i] == '+' {
		nonSync = true
		i--
	}
	end := i + 1
	for i >= 0 && line[i] >= '0' && line[i] <= '9' {
		i--
	}
	digits := line[i+1 : end]
	if i < 0 || line[i] != '{' || len(digits) == 0 || len(digits) > 19 {
		return 0, false, false, 0, false
	}
	for _, c := range digits {
		v := n*10 + int64(c-'0')
		if v < n {
			return 0, false, false, 0, false
		}
		n = v
	}
	start = i
	if i > 0 && line[i-1] == '~' {
		binary = true
		start = i - 1
	}
	return n, nonSync, binary, start, true
}

// TrimCRLF removes a trailing LF or CRLF.
func TrimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// IsAtomChar reports whether c may appear in an atom (RFC 9051 §9
// ATOM-CHAR): any CHAR except atom-specials.
func IsAtomChar(c byte) bool {
	if c <= 0x1f || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// IsAStringChar reports whether c is an ASTRING-CHAR (ATOM-CHAR or "]").
func IsAStringChar(c byte) bool { return c == ']' || IsAtomChar(c) }

// ValidTag reports whether t is a well-formed tag: 1*<any ASTRING-CHAR
// except "+"> (RFC 9051 §9).
func ValidTag(t []byte) bool {
	if len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c == '+' || !IsAStringChar(c) {
			return false
		}
	}
	return true
}

// FirstWord splits b at its first space: the word and the rest after the
// space (empty when there is none).
func FirstWord(b []byte) (word, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// EqualFold reports whether b equals the upper-case ASCII word w, ignoring
// ASCII case, without allocating.
func EqualFold(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// NeedsLiteral reports whether s is better not sent as a quoted string:
// it contains control characters (CR, LF and NUL are never valid there) or,
// for IMAP4rev1 peers, 8-bit octets.
func NeedsLiteral(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case (c < 0x20 && c != '\t') || c == 0x7f || c >= 0x80:
			return true
		}
	}
	return false
}

// AppendQuoted appends s as an IMAP quoted string. The caller must have
// checked NeedsLiteral.
func AppendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

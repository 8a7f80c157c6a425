package routing

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// NormalizeUser returns the form of a user name that routes, hashing,
// counters and the session index use: Unicode NFC, then lower-cased, then
// with surrounding white space trimmed. It does not allocate when s is
// already normalized.
//
// The backend still receives the name exactly as the client sent it.
func NormalizeUser(s string) string {
	return strings.TrimSpace(strings.ToLower(norm.NFC.String(s)))
}

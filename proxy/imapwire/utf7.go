package imapwire

import (
	"encoding/base64"
	"unicode/utf16"
	"unicode/utf8"
)

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// DecodeMailbox turns a mailbox name as sent under IMAP4rev1 (modified
// UTF-7, RFC 3501 §5.1.3) into UTF-8. A name that is not valid modified
// UTF-7 (or is UTF-8 already, RFC 6855) is returned unchanged.
func DecodeMailbox(name []byte) string {
	amp := -1
	for i, c := range name {
		if c >= 0x80 {
			return string(name) // UTF-8 already
		}
		if c == '&' && amp < 0 {
			amp = i
		}
	}
	if amp < 0 {
		return string(name)
	}
	out := make([]byte, 0, len(name)+8)
	for i := 0; i < len(name); {
		c := name[i]
		if c != '&' {
			out = append(out, c)
			i++
			continue
		}
		j := i + 1
		for j < len(name) && name[j] != '-' {
			j++
		}
		if j == len(name) {
			return string(name)
		}
		if j == i+1 { // "&-" is "&"
			out = append(out, '&')
			i = j + 1
			continue
		}
		raw, err := mutf7.DecodeString(string(name[i+1 : j]))
		if err != nil || len(raw)%2 != 0 {
			return string(name)
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError || r < 0x20 {
				return string(name)
			}
			out = utf8.AppendRune(out, r)
		}
		i = j + 1
	}
	return string(out)
}

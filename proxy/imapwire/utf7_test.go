package imapwire

import "testing"

func TestDecodeMailbox(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Entw&APw-rfe", "Entwürfe"},
		{"&ZeVnLIqe-", "日本語"},
		{"Tom &- Jerry", "Tom & Jerry"},
		{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"},
		{"Entwürfe", "Entwürfe"}, // UTF-8 (RFC 6855) stays
		{"bad&AP", "bad&AP"},     // unterminated
		{"bad&!!!-", "bad&!!!-"}, // not base64
		{"&AAA-", "&AAA-"},       // odd number of octets... and NUL
		{"", ""},
	} {
		if got := DecodeMailbox([]byte(tc.in)); got != tc.want {
			t.Errorf("DecodeMailbox(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

package proxy

import (
	"fmt"
	"testing"
)

func TestParseCapsMemo(t *testing.T) {
	text := []byte("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN COMPRESS=DEFLATE STARTTLS")
	a, b := parseCaps(text), parseCaps(append([]byte(nil), text...))
	if a != b {
		t.Fatal("the same list was parsed twice")
	}
	for _, keep := range []bool{false, true} {
		got, gotKept := a.filter(keep)
		want, wantKept := filterCaps(a.names, keep)
		if got != want || gotKept != wantKept {
			t.Fatalf("filter(%v) = %q %v, want %q %v", keep, got, gotKept, want, wantKept)
		}
	}
	if got, _ := a.filter(true); got != "IMAP4rev1 ID ENABLE IDLE LITERAL+ COMPRESS=DEFLATE" {
		t.Fatalf("filter(true) = %q", got)
	}
	if !a.has("auth=plain") || a.has("LOGINDISABLED") || (*capList)(nil).has("IMAP4rev1") {
		t.Fatal("has")
	}
	// A backend announcing ever-new lists does not grow the memo.
	for i := range 3 * capMemoMax {
		c := parseCaps(fmt.Appendf(nil, "IMAP4rev1 X-N%d", i))
		if len(c.names) != 2 {
			t.Fatalf("%q", c.names)
		}
	}
	capMemo.RLock()
	n := len(capMemo.m)
	capMemo.RUnlock()
	if n > capMemoMax {
		t.Fatalf("memo holds %d lists, max %d", n, capMemoMax)
	}
}

package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func sessionIDs(ss []*Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func TestSessions(t *testing.T) {
	tbl := mustTable(t, []*Backend{backend("s1", "p", 1), backend("s2", "p", 1)}, nil, "p")
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	handle := struct{ n int }{42}
	for _, s := range []*Session{
		{ID: "c", User: "Alice@Example.org", ClientIP: "192.0.2.1", Backend: "s1", Listener: "imaps", Start: t0.Add(2 * time.Second), Handle: handle},
		{ID: "a", User: "alice@example.org", ClientIP: "192.0.2.2", Backend: "s2", Listener: "imap", Start: t0.Add(time.Second)},
		{ID: "b", User: "bob@example.org", ClientIP: "192.0.2.1", Backend: "s1", Listener: "imaps", Start: t0.Add(time.Second)},
		{ID: "d", User: "e\u0301mile@example.org", ClientIP: "2001:db8::1", Backend: "s2", Listener: "imaps", Start: t0},
	} {
		if err := tbl.AddSession(s); err != nil {
			t.Fatalf("AddSession(%s): %v", s.ID, err)
		}
	}

	if err := tbl.AddSession(&Session{ID: "a", User: "x"}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("duplicate ID: err = %v", err)
	}
	if err := tbl.AddSession(&Session{User: "x"}); err == nil {
		t.Error("empty ID accepted")
	}
	if err := tbl.AddSession(nil); err == nil {
		t.Error("nil session accepted")
	}

	check := func(what string, got []*Session, want ...string) {
		t.Helper()
		if ids := sessionIDs(got); !slices.Equal(ids, want) && !(len(ids) == 0 && len(want) == 0) {
			t.Errorf("%s = %v, want %v", what, ids, want)
		}
	}
	check("Sessions()", tbl.Sessions(), "d", "a", "b", "c") // by start, then ID
	check("SessionsByUser(alice)", tbl.SessionsByUser("  ALICE@example.org"), "a", "c")
	check("SessionsByUser(émile NFC)", tbl.SessionsByUser("\u00c9mile@example.org"), "d")
	check("SessionsByUser(nobody)", tbl.SessionsByUser("nobody@example.org"))
	check("SessionsByUser(\"\")", tbl.SessionsByUser(""))
	check("SessionsByBackend(s1)", tbl.SessionsByBackend("s1"), "b", "c")
	check("SessionsByBackend(s2)", tbl.SessionsByBackend("s2"), "d", "a")
	check("SessionsByClientIP(192.0.2.1)", tbl.SessionsByClientIP("192.0.2.1"), "b", "c")
	check("SessionsByClientIP(2001:db8::1)", tbl.SessionsByClientIP("2001:db8::1"), "d")
	check("SessionsByClientIP(192.0.2.)", tbl.SessionsByClientIP("192.0.2."))
	if n := tbl.SessionCount(); n != 4 {
		t.Errorf("SessionCount() = %d, want 4", n)
	}

	c := tbl.SessionsByBackend("s1")[1]
	if c.User != "alice@example.org" {
		t.Errorf("stored user %q, want it normalized", c.User)
	}
	if c.Handle != handle {
		t.Errorf("Handle = %v, want it kept", c.Handle)
	}

	tbl.RemoveSession("c")
	tbl.RemoveSession("c")       // twice is fine
	tbl.RemoveSession("unknown") // so is an unknown ID
	check("SessionsByUser(alice) after remove", tbl.SessionsByUser("alice@example.org"), "a")
	check("SessionsByBackend(s1) after remove", tbl.SessionsByBackend("s1"), "b")
	if n := tbl.SessionCount(); n != 3 {
		t.Errorf("SessionCount() = %d after remove, want 3", n)
	}

	// The ID is free again.
	if err := tbl.AddSession(&Session{ID: "c", User: "carol", Backend: "s1"}); err != nil {
		t.Errorf("re-adding a removed ID: %v", err)
	}
}

// BenchmarkSessionAddRemove is what registering and unregistering one
// session costs with 2,000 others registered: what every login and logout
// would pay once the proxy registers its sessions here.
func BenchmarkSessionAddRemove(b *testing.B) {
	tbl := mustTable(b, []*Backend{backend("s1", "p", 1)}, nil, "p")
	for i := range 2000 {
		s := &Session{ID: fmt.Sprintf("other%05d", i), User: fmt.Sprintf("u%d@example.org", i%500),
			ClientIP: "127.0.0.1", Backend: "s1", Listener: "imap", Start: time.Now()}
		if err := tbl.AddSession(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("sess%08d", i)
		s := &Session{ID: id, User: "alice@example.org", ClientIP: "127.0.0.2", Backend: "s1", Listener: "imap", Start: time.Now()}
		if err := tbl.AddSession(s); err != nil {
			b.Fatal(err)
		}
		tbl.RemoveSession(id)
	}
	if n := tbl.SessionCount(); n != 2000 {
		b.Fatalf("%d sessions left, want 2000", n)
	}
}

package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func backend(name, pool string, weight int) *Backend {
	return &Backend{Name: name, Address: name + ".internal:143", TLS: TLSNone, Pool: pool, Weight: weight}
}

func names(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name
	}
	return out
}

func mustTable(t testing.TB, backends []*Backend, routes []Route, defaultPool string) *Table {
	t.Helper()
	tbl, err := NewTable(backends, routes, defaultPool)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tbl
}

func mustResolve(t testing.TB, tbl *Table, user string) []string {
	t.Helper()
	bs, err := tbl.Resolve(user)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", user, err)
	}
	return names(bs)
}

func userName(i int) string { return fmt.Sprintf("user%05d@example.org", i) }

func TestNormalizeUser(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.org", "alice@example.org"},
		{"  Alice@Example.ORG ", "alice@example.org"},
		{"\tBob@Example.org\r\n", "bob@example.org"},
		{"e\u0301mile@exemple.fr", "\u00e9mile@exemple.fr"},    // NFD é -> NFC é
		{"E\u0301MILE@EXEMPLE.FR", "\u00e9mile@exemple.fr"},    // NFD É -> NFC, lower
		{"\u00c9mile@exemple.fr", "\u00e9mile@exemple.fr"},     // NFC É
		{"ÅNGSTRÖM@EXAMPLE.ORG", "ångström@example.org"},       // non-ASCII upper case
		{"\u00a0alice@example.org\u3000", "alice@example.org"}, // Unicode white space
		{"", ""},
		{"   ", ""},
	} {
		if got := NormalizeUser(tc.in); got != tc.want {
			t.Errorf("NormalizeUser(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := NormalizeUser(tc.want); got != tc.want {
			t.Errorf("NormalizeUser is not idempotent on %q: %q", tc.want, got)
		}
	}
	if nfc, nfd := NormalizeUser("\u00e9@x"), NormalizeUser("e\u0301@x"); nfc != nfd {
		t.Errorf("NFC %q and NFD %q normalize differently", nfc, nfd)
	}
}

func TestNormalizeUserDoesNotAllocateWhenNormalized(t *testing.T) {
	for _, u := range []string{"alice@example.org", "ångström@example.org"} {
		if n := testing.AllocsPerRun(100, func() { NormalizeUser(u) }); n != 0 {
			t.Errorf("NormalizeUser(%q) allocates %v times", u, n)
		}
	}
}

func precedenceTable(t *testing.T) *Table {
	return mustTable(t,
		[]*Backend{
			backend("def1", "default", 1),
			backend("def2", "default", 1),
			backend("leg1", "legacy", 1),
			backend("leg2", "legacy", 1),
			backend("vip1", "", 1),
		},
		[]Route{
			{User: "Alice@Example.org", Backend: "vip1"},
			{User: "bob@legacy.example", Pool: "default"},
			{Domain: "EXAMPLE.org", Pool: "legacy"},
			{Domain: "legacy.example", Backend: "leg2"},
		},
		"default")
}

func TestResolvePrecedence(t *testing.T) {
	tbl := precedenceTable(t)
	for _, tc := range []struct {
		user string
		want []string // as a set unless len 1
	}{
		{"alice@example.org", []string{"vip1"}},            // user route beats domain route
		{"  ALICE@example.ORG ", []string{"vip1"}},         // after normalization
		{"carol@example.org", []string{"leg1", "leg2"}},    // domain route to a pool
		{"Carol@EXAMPLE.ORG", []string{"leg1", "leg2"}},    // domain matched normalized
		{"x@y@example.org", []string{"leg1", "leg2"}},      // the part after the LAST '@'
		{"dave@legacy.example", []string{"leg2"}},          // domain route to a backend
		{"bob@legacy.example", []string{"def1", "def2"}},   // user route to a pool beats domain route
		{"erin@sub.example.org", []string{"def1", "def2"}}, // no suffix matching
		{"frank@other.net", []string{"def1", "def2"}},      // default pool
		{"nodomain", []string{"def1", "def2"}},             // no '@' at all
		{"example.org", []string{"def1", "def2"}},          // a domain is not a user
	} {
		got := mustResolve(t, tbl, tc.user)
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, tc.want) {
			t.Errorf("Resolve(%q) = %v, want the backends %v", tc.user, got, tc.want)
		}
	}
}

// TestResolveGolden pins the rendezvous order for a fixed pool. If it fails,
// the hashing changed and users would move to other backends.
func TestResolveGolden(t *testing.T) {
	tbl := mustTable(t, []*Backend{
		backend("store3", "default", 1), // input order must not matter
		backend("store1", "default", 1),
		backend("store2", "default", 1),
	}, nil, "default")
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"alice@example.org", []string{"store2", "store1", "store3"}},
		{"bob@example.org", []string{"store2", "store1", "store3"}},
		{"carol@example.org", []string{"store3", "store1", "store2"}},
		{"dave@example.net", []string{"store1", "store3", "store2"}},
		{"eve@example.com", []string{"store2", "store3", "store1"}},
		{"frank@example.org", []string{"store3", "store2", "store1"}},
		{"grace@example.org", []string{"store2", "store1", "store3"}},
		{"heidi@example.org", []string{"store2", "store1", "store3"}},
		{"ivan@example.org", []string{"store3", "store1", "store2"}},
		{"judy@example.org", []string{"store1", "store3", "store2"}},
		{"mallory@example.org", []string{"store1", "store3", "store2"}},
		{"", []string{"store2", "store3", "store1"}},
		{"émile@exemple.fr", []string{"store1", "store2", "store3"}},
		{"user0001@example.org", []string{"store1", "store3", "store2"}},
		{"  Judy@Example.ORG", []string{"store1", "store3", "store2"}}, // hashed normalized
	} {
		if got := mustResolve(t, tbl, tc.user); !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%q) = %v, want %v", tc.user, got, tc.want)
		}
	}
}

func TestResolveGoldenWeighted(t *testing.T) {
	tbl := mustTable(t, []*Backend{
		backend("small", "p", 1),
		backend("medium", "p", 2),
		backend("large", "p", 5),
	}, nil, "p")
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"alice@example.org", []string{"medium", "large", "small"}},
		{"bob@example.org", []string{"large", "medium", "small"}},
		{"carol@example.org", []string{"large", "medium", "small"}},
		{"dave@example.net", []string{"medium", "large", "small"}},
		{"eve@example.com", []string{"medium", "large", "small"}},
		{"frank@example.org", []string{"small", "large", "medium"}},
	} {
		if got := mustResolve(t, tbl, tc.user); !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%q) = %v, want %v", tc.user, got, tc.want)
		}
	}
}

func TestResolveDeterministicAcrossTables(t *testing.T) {
	mk := func(order []int) *Table {
		all := []*Backend{backend("a", "p", 1), backend("b", "p", 3), backend("c", "p", 2), backend("d", "p", 1)}
		var bs []*Backend
		for _, i := range order {
			bs = append(bs, all[i])
		}
		return mustTable(t, bs, nil, "p")
	}
	t1, t2 := mk([]int{0, 1, 2, 3}), mk([]int{3, 1, 0, 2})
	for i := range 2000 {
		u := userName(i)
		a, b := mustResolve(t, t1, u), mustResolve(t, t2, u)
		if !slices.Equal(a, b) {
			t.Fatalf("Resolve(%q): %v vs %v depending on backend order", u, a, b)
		}
		if len(a) != 4 {
			t.Fatalf("Resolve(%q) = %v, want all 4 pool backends", u, a)
		}
		if c := mustResolve(t, t1, u); !slices.Equal(a, c) {
			t.Fatalf("Resolve(%q) not stable: %v then %v", u, a, c)
		}
	}
}

func TestResolveDistributionFollowsWeights(t *testing.T) {
	weights := map[string]int{"w1": 1, "w2": 2, "w3": 3, "w4": 4}
	var bs []*Backend
	total := 0
	for name, w := range weights {
		bs = append(bs, backend(name, "p", w))
		total += w
	}
	tbl := mustTable(t, bs, nil, "p")
	const users = 30000
	counts := map[string]int{}
	for i := range users {
		counts[mustResolve(t, tbl, userName(i))[0]]++
	}
	for name, w := range weights {
		want := float64(users) * float64(w) / float64(total)
		if got := float64(counts[name]); got < want*0.9 || got > want*1.1 {
			t.Errorf("backend %s (weight %d) got %v users, want %.0f ±10%%", name, w, got, want)
		}
	}
}

func homes(t *testing.T, tbl *Table, users int) []string {
	out := make([]string, users)
	for i := range users {
		out[i] = mustResolve(t, tbl, userName(i))[0]
	}
	return out
}

func TestMinimalDisruptionOnRemove(t *testing.T) {
	four := []*Backend{backend("s1", "p", 1), backend("s2", "p", 2), backend("s3", "p", 1), backend("s4", "p", 1)}
	before := mustTable(t, four, nil, "p")
	after := mustTable(t, []*Backend{four[0], four[1], four[3]}, nil, "p") // s3 removed
	const users = 10000
	for i := range users {
		u := userName(i)
		old, cur := mustResolve(t, before, u), mustResolve(t, after, u)
		if old[0] != "s3" && cur[0] != old[0] {
			t.Fatalf("%s moved from %s to %s although %s was not removed", u, old[0], cur[0], old[0])
		}
		// The failover order is what remains of the old order.
		want := slices.DeleteFunc(slices.Clone(old), func(n string) bool { return n == "s3" })
		if !slices.Equal(cur, want) {
			t.Fatalf("%s: order %v after removing s3, want %v", u, cur, want)
		}
	}
}

func TestMinimalDisruptionOnAdd(t *testing.T) {
	four := []*Backend{backend("s1", "p", 1), backend("s2", "p", 1), backend("s3", "p", 1), backend("s4", "p", 1)}
	before := mustTable(t, four, nil, "p")
	after := mustTable(t, append(slices.Clone(four), backend("s5", "p", 1)), nil, "p")
	const users = 20000
	old, cur := homes(t, before, users), homes(t, after, users)
	moved := 0
	for i := range users {
		if old[i] == cur[i] {
			continue
		}
		moved++
		if cur[i] != "s5" {
			t.Fatalf("%s moved from %s to %s, not to the new backend", userName(i), old[i], cur[i])
		}
	}
	if share := float64(moved) / users; share < 0.18 || share > 0.22 {
		t.Errorf("adding a 5th backend moved %.3f of users, want about 0.2", share)
	}
}

func TestResolveNoBackend(t *testing.T) {
	tbl := mustTable(t, []*Backend{backend("s1", "other", 1)},
		[]Route{{Domain: "example.org", Pool: "other"}}, "default")
	if _, err := tbl.Resolve("bob@example.net"); !errors.Is(err, ErrNoBackend) {
		t.Errorf("empty default pool: err = %v, want ErrNoBackend", err)
	}
	if got := mustResolve(t, tbl, "bob@example.org"); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("routed user: %v", got)
	}

	tbl = mustTable(t, nil, nil, "")
	if bs, err := tbl.Resolve("bob@example.net"); !errors.Is(err, ErrNoBackend) || bs != nil {
		t.Errorf("no default pool: %v, %v, want nil, ErrNoBackend", bs, err)
	}
}

func TestNewTableValidation(t *testing.T) {
	good := func() []*Backend {
		return []*Backend{backend("s1", "p", 1), backend("s2", "q", 1)}
	}
	for _, tc := range []struct {
		name     string
		backends []*Backend
		routes   []Route
		want     string
	}{
		{"unknown backend", good(), []Route{{User: "a@x", Backend: "nope"}}, `unknown backend "nope"`},
		{"unknown pool", good(), []Route{{Domain: "x", Pool: "nope"}}, `unknown pool "nope"`},
		{"user and domain", good(), []Route{{User: "a@x", Domain: "x", Backend: "s1"}}, "exactly one of user and domain"},
		{"no source", good(), []Route{{Backend: "s1"}}, "exactly one of user and domain"},
		{"blank source", good(), []Route{{User: "  ", Backend: "s1"}}, "exactly one of user and domain"},
		{"backend and pool", good(), []Route{{User: "a@x", Backend: "s1", Pool: "p"}}, "exactly one of backend and pool"},
		{"no target", good(), []Route{{User: "a@x"}}, "exactly one of backend and pool"},
		{"duplicate user", good(), []Route{{User: "a@x", Backend: "s1"}, {User: " A@X", Backend: "s2"}}, "user a@x has more than one route"},
		{"duplicate domain", good(), []Route{{Domain: "x", Pool: "p"}, {Domain: "X", Pool: "q"}}, "domain x has more than one route"},
		{"domain with @", good(), []Route{{Domain: "@x", Pool: "p"}}, "must not contain '@'"},
		{"duplicate backend", append(good(), backend("s1", "p", 1)), nil, `backend "s1" defined twice`},
		{"nameless backend", append(good(), &Backend{Address: "x:1"}), nil, "has no name"},
		{"nil backend", append(good(), nil), nil, "is nil"},
		{"no address", append(good(), &Backend{Name: "s3"}), nil, `backend "s3" has no address`},
		{"bad tls", append(good(), &Backend{Name: "s3", Address: "x:1", TLS: "ssl"}), nil, `unknown tls mode "ssl"`},
		{"TLS without config", append(good(), &Backend{Name: "s3", Address: "x:1", TLS: TLSImplicit}), nil, "needs a TLS config"},
		{"bad forward_client", append(good(), &Backend{Name: "s3", Address: "x:1", ForwardClient: "xclient"}), nil, `unknown forward_client "xclient"`},
		{"negative weight", append(good(), backend("s3", "p", -1)), nil, "weight -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTable(tc.backends, tc.routes, "p")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	// Every problem is reported at once.
	_, err := NewTable([]*Backend{{Name: "s1"}}, []Route{{User: "a", Backend: "x"}, {Domain: "d", Pool: "y"}}, "")
	for _, want := range []string{"no address", `unknown backend "x"`, `unknown pool "y"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("combined error %v does not mention %q", err, want)
		}
	}
}

func TestDefaultsForZeroValues(t *testing.T) {
	// TLS "" means none and weight 0 counts as 1.
	tbl := mustTable(t, []*Backend{
		{Name: "a", Address: "a:143", Pool: "p"},
		{Name: "b", Address: "b:143", Pool: "p", Weight: 1},
	}, nil, "p")
	counts := map[string]int{}
	for i := range 10000 {
		counts[mustResolve(t, tbl, userName(i))[0]]++
	}
	if counts["a"] < 4500 || counts["a"] > 5500 {
		t.Errorf("weight 0 vs 1: %v, want an even split", counts)
	}
}

func TestAccessors(t *testing.T) {
	tbl := precedenceTable(t)
	if got := names(tbl.Backends()); !slices.Equal(got, []string{"def1", "def2", "leg1", "leg2", "vip1"}) {
		t.Errorf("Backends() = %v", got)
	}
	if b := tbl.Backend("leg2"); b == nil || b.Name != "leg2" {
		t.Errorf("Backend(leg2) = %v", b)
	}
	if b := tbl.Backend("nope"); b != nil {
		t.Errorf("Backend(nope) = %v, want nil", b)
	}
	if got := names(tbl.Pool("legacy")); !slices.Equal(got, []string{"leg1", "leg2"}) {
		t.Errorf("Pool(legacy) = %v", got)
	}
	if got := tbl.Pool(""); got != nil {
		t.Errorf("Pool(\"\") = %v, want nil", got)
	}
	if got := tbl.DefaultPool(); got != "default" {
		t.Errorf("DefaultPool() = %q", got)
	}
	want := []Route{
		{Domain: "example.org", Pool: "legacy"},
		{Domain: "legacy.example", Backend: "leg2"},
		{User: "alice@example.org", Backend: "vip1"},
		{User: "bob@legacy.example", Pool: "default"},
	}
	if got := tbl.Routes(); !slices.Equal(got, want) {
		t.Errorf("Routes() = %v, want %v", got, want)
	}
}

func TestReplace(t *testing.T) {
	b1, b2 := backend("s1", "p", 1), backend("s2", "p", 1)
	tbl := mustTable(t, []*Backend{b1}, nil, "p")
	if err := tbl.AddSession(&Session{ID: "x", User: "u", Backend: "s1"}); err != nil {
		t.Fatal(err)
	}

	if err := tbl.Replace([]*Backend{b2}, []Route{{User: "u", Backend: "nope"}}, "p"); err == nil {
		t.Fatal("Replace accepted an unknown backend")
	}
	if got := mustResolve(t, tbl, "u"); !slices.Equal(got, []string{"s1"}) {
		t.Errorf("after a failed Replace: %v, want the old config", got)
	}

	if err := tbl.Replace([]*Backend{b2}, []Route{{User: "u", Backend: "s2"}}, "p"); err != nil {
		t.Fatal(err)
	}
	if got := mustResolve(t, tbl, "u"); !slices.Equal(got, []string{"s2"}) {
		t.Errorf("after Replace: %v", got)
	}
	if tbl.Backend("s1") != nil || tbl.Backend("s2") != b2 {
		t.Error("Replace did not swap the backend table")
	}
	if got := len(tbl.Routes()); got != 1 {
		t.Errorf("%d routes after Replace, want 1", got)
	}
	if got := tbl.SessionsByBackend("s1"); len(got) != 1 {
		t.Errorf("Replace touched sessions: %v", got)
	}
}

// TestConcurrentResolveAndReplace is meant for -race: resolvers must see
// one configuration or the other, never a mix.
func TestConcurrentResolveAndReplace(t *testing.T) {
	cfgA := []*Backend{backend("a1", "p", 1), backend("a2", "p", 1)}
	cfgB := []*Backend{backend("b1", "p", 1), backend("b2", "p", 1), backend("b3", "p", 1)}
	tbl := mustTable(t, cfgA, nil, "p")

	errs := make(chan error, 8)
	stop := make(chan struct{})
	var resolvers sync.WaitGroup
	for g := range 4 {
		resolvers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				bs, err := tbl.Resolve(userName(g*100000 + i))
				if err != nil {
					errs <- err
					return
				}
				for _, b := range bs {
					if b.Name[0] != bs[0].Name[0] {
						errs <- fmt.Errorf("mixed configurations: %v", names(bs))
						return
					}
				}
				tbl.Backends()
				tbl.Sessions()
			}
		})
	}

	for i := range 200 {
		bs := cfgA
		if i%2 == 0 {
			bs = cfgB
		}
		if err := tbl.Replace(bs, nil, "p"); err != nil {
			t.Fatal(err)
		}
		s := &Session{ID: fmt.Sprint(i), User: "u", Backend: bs[0].Name}
		if err := tbl.AddSession(s); err != nil {
			t.Fatal(err)
		}
		tbl.SessionsByUser("u")
		tbl.RemoveSession(s.ID)
	}
	close(stop)
	resolvers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := tbl.SessionCount(); n != 0 {
		t.Errorf("SessionCount() = %d after removing all sessions", n)
	}
}

func TestResolveAllocations(t *testing.T) {
	tbl := mustTable(t, []*Backend{backend("s1", "p", 1), backend("s2", "p", 2), backend("s3", "p", 1)},
		[]Route{{User: "vip@example.org", Backend: "s2"}}, "p")
	for _, u := range []string{"alice@example.org", "vip@example.org"} {
		if n := testing.AllocsPerRun(200, func() { tbl.Resolve(u) }); n != 1 {
			t.Errorf("Resolve(%q) allocates %v times, want 1 (the result)", u, n)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	pool := []*Backend{
		backend("s1", "p", 1), backend("s2", "p", 2), backend("s3", "p", 1), backend("s4", "p", 3),
	}
	tbl := mustTable(b, pool, []Route{{User: "vip@example.org", Backend: "s2"}, {Domain: "example.net", Pool: "p"}}, "p")
	for _, bc := range []struct{ name, user string }{
		{"pool", "alice@example.org"},
		{"user-route", "vip@example.org"},
		{"domain-route", "bob@example.net"},
		{"unnormalized", "  Alice@Example.ORG"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tbl.Resolve(bc.user); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

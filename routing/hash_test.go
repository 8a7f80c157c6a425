package routing

import (
	"hash/fnv"
	"math"
	"testing"
)

// TestHashKeyMatchesReference pins hashKey to its documented definition:
// FNV-1a 64 of name + "\x00" + user, then the SplitMix64 finalizer.
func TestHashKeyMatchesReference(t *testing.T) {
	for _, k := range [][2]string{
		{"store1", "alice@example.org"},
		{"store2", "alice@example.org"},
		{"", ""},
		{"a", "b"},
		{"backend-with-a-long-name", "émile@exemple.fr"},
	} {
		h := fnv.New64a()
		h.Write([]byte(k[0] + "\x00" + k[1]))
		if got, want := hashKey(k[0], k[1]), splitmix64(h.Sum64()); got != want {
			t.Errorf("hashKey(%q, %q) = %#x, want %#x", k[0], k[1], got, want)
		}
	}
}

// TestSplitmix64 checks the finalizer against the first output of the
// reference SplitMix64 generator seeded with 0.
func TestSplitmix64(t *testing.T) {
	if got, want := splitmix64(0x9e3779b97f4a7c15), uint64(0xe220a8397b1dcdaf); got != want {
		t.Fatalf("splitmix64 = %#x, want %#x", got, want)
	}
}

// TestHashKeyGolden fails if the hash changes: that would move users
// between backends on upgrade and between instances of mixed versions.
func TestHashKeyGolden(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		want       uint64
	}{
		{"store1", "alice@example.org", 0x6c8819372ca6a758},
		{"store2", "alice@example.org", 0xa6f84ca748beeb69},
		{"", "", 0x25fc6dd36ce04b20},
	} {
		if got := hashKey(tc.name, tc.user); got != tc.want {
			t.Errorf("hashKey(%q, %q) = %#x, want %#x", tc.name, tc.user, got, tc.want)
		}
	}
}

func TestUnitFloatOpenInterval(t *testing.T) {
	for _, h := range []uint64{0, 1, 1 << 11, 1 << 12, math.MaxUint64 - 1, math.MaxUint64} {
		u := unitFloat(h)
		if !(u > 0 && u < 1) {
			t.Errorf("unitFloat(%#x) = %v, not in (0, 1)", h, u)
		}
		if s := -1 / math.Log(u); math.IsInf(s, 0) || math.IsNaN(s) || s <= 0 {
			t.Errorf("score for unitFloat(%#x) = %v, want finite and positive", h, s)
		}
	}
}

func TestCompareScoredTieBreaksByName(t *testing.T) {
	a := scored{&Backend{Name: "a"}, 1}
	b := scored{&Backend{Name: "b"}, 1}
	c := scored{&Backend{Name: "c"}, 2}
	if compareScored(a, b) >= 0 || compareScored(b, a) <= 0 {
		t.Error("equal scores are not ordered by name")
	}
	if compareScored(c, a) >= 0 {
		t.Error("higher score does not come first")
	}
}

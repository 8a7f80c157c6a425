package routing

import (
	"cmp"
	"math"
	"slices"
)

// FNV-1a 64-bit parameters.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// hashKey returns the 64-bit hash rendezvous hashing uses for one backend
// and one normalized user: FNV-1a 64 over name + "\x00" + user, followed by
// the splitmix64 finalizer to spread FNV's weak low bits. It is part of the
// on-the-wire contract between imapedge instances: changing it moves users.
func hashKey(name, user string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the "\x00" separator: XOR with zero is a no-op
	for i := 0; i < len(user); i++ {
		h ^= uint64(user[i])
		h *= fnvPrime64
	}
	return splitmix64(h)
}

// splitmix64 is the finalizer (mixing function) of the SplitMix64 generator.
func splitmix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unitFloat maps h to a float64 in the open interval (0, 1): the top 52 bits
// plus one half, scaled by 2^-52. Both bounds are excluded exactly, so the
// logarithm in score is always finite and negative.
func unitFloat(h uint64) float64 {
	return (float64(h>>12) + 0.5) / (1 << 52)
}

// score is the weighted rendezvous score of backend b for user:
// -weight / ln(u). The backend with the highest score is the user's home.
// The expected share of users a backend gets is proportional to its weight.
func score(b *Backend, user string) float64 {
	return -float64(b.weight()) / math.Log(unitFloat(hashKey(b.Name, user)))
}

type scored struct {
	b     *Backend
	score float64
}

// compareScored orders by score, highest first, then by backend name.
func compareScored(x, y scored) int {
	if c := cmp.Compare(y.score, x.score); c != 0 {
		return c
	}
	return cmp.Compare(x.b.Name, y.b.Name)
}

// rank returns a new slice with all of pool ordered by rendezvous score for
// the normalized user, best first. For pools of up to 16 backends the only
// allocation is the result.
func rank(pool []*Backend, user string) []*Backend {
	var buf [16]scored
	pairs := buf[:0]
	if len(pool) > len(buf) {
		pairs = make([]scored, 0, len(pool))
	}
	for _, b := range pool {
		pairs = append(pairs, scored{b, score(b, user)})
	}
	slices.SortFunc(pairs, compareScored)
	out := make([]*Backend, len(pairs))
	for i, p := range pairs {
		out[i] = p.b
	}
	return out
}

// Package policy holds imapedge's admission and login rules: which networks
// may log in without TLS, the limits of the pre-authentication phase, the
// post-login idle timeout and the delay applied to failed logins.
//
// Connection admission (allow/deny networks, connection caps) and failure
// throttling per IP and per user come with later issues; their config keys
// are decoded and validated already but not enforced here yet.
package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Networks is a list of address prefixes.
type Networks []netip.Prefix

// ParseNetworks parses CIDR prefixes; a bare address means a single host.
func ParseNetworks(list []string) (Networks, error) {
	out := make(Networks, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("policy: %q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Contains reports whether ip is inside one of the prefixes. IPv4-mapped
// IPv6 addresses are compared as IPv4.
func (n Networks) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range n {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Preauth bounds what a client may do before it has logged in.
type Preauth struct {
	Timeout        time.Duration // total pre-auth deadline
	MaxLine        int           // longest command line, literals excluded
	MaxLiteral     int           // largest synchronizing literal
	MaxBadCommands int           // BAD answers before BYE
}

// DefaultPreauth returns the limits DESIGN.md §3 lists as defaults.
func DefaultPreauth() Preauth {
	return Preauth{Timeout: 60 * time.Second, MaxLine: 16 << 10, MaxLiteral: 8 << 10, MaxBadCommands: 3}
}

// MaxNonSyncLiteral is the largest non-synchronizing literal accepted before
// login: imapedge advertises LITERAL- (RFC 7888 §5).
const MaxNonSyncLiteral = 4096

// Policy is the set of rules the proxy consults for each connection.
// The zero value refuses plaintext logins everywhere and has no limits set;
// use Default for the documented defaults.
type Policy struct {
	// PlaintextAuthNetworks may log in without TLS. Empty means nobody,
	// loopback included.
	PlaintextAuthNetworks Networks
	Preauth               Preauth
	// IdleTimeout ends a logged-in session after this long without a
	// client command (never shorter than 30 minutes in a valid config).
	IdleTimeout time.Duration
	// FailureBaseDelay is the delay of the first failed login's NO; it
	// doubles with each further failure on the connection up to
	// FailureMaxDelay.
	FailureBaseDelay time.Duration
	FailureMaxDelay  time.Duration
}

// Default returns the policy with DESIGN.md's defaults.
func Default() *Policy {
	return &Policy{
		Preauth:          DefaultPreauth(),
		IdleTimeout:      31 * time.Minute,
		FailureBaseDelay: 500 * time.Millisecond,
		FailureMaxDelay:  5 * time.Second,
	}
}

// PlaintextAllowed reports whether a client at ip may send credentials over
// a connection without TLS.
func (p *Policy) PlaintextAllowed(ip netip.Addr) bool {
	return p.PlaintextAuthNetworks.Contains(ip)
}

// FailureDelay is how long to hold the NO of the n-th failed login (n >= 1)
// on one connection: FailureBaseDelay, doubling per failure, capped at
// FailureMaxDelay.
func (p *Policy) FailureDelay(n int) time.Duration {
	if n < 1 || p.FailureBaseDelay <= 0 {
		return 0
	}
	d := p.FailureBaseDelay
	for i := 1; i < n && d < p.FailureMaxDelay; i++ {
		d *= 2
	}
	if p.FailureMaxDelay > 0 && d > p.FailureMaxDelay {
		d = p.FailureMaxDelay
	}
	return d
}

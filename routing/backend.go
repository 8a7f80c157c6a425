package routing

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TLSMode is how imapedge secures its connection to a backend.
type TLSMode string

// Backend TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain TCP
	TLSStartTLS TLSMode = "starttls" // plain TCP, then STARTTLS before login
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (IMAPS)
)

// Valid reports whether m is one of the known modes. The empty mode counts
// as valid and means [TLSNone].
func (m TLSMode) Valid() bool {
	switch m {
	case "", TLSNone, TLSStartTLS, TLSImplicit:
		return true
	}
	return false
}

// Backend is one IMAP server imapedge can route sessions to.
//
// A Table keeps the *Backend it was given and hands the same pointers out
// again; a Backend must not be modified once it has been passed to
// [NewTable] or [Table.Replace].
type Backend struct {
	Name                string
	Address             string      // host:port
	TLS                 TLSMode     // empty means TLSNone
	TLSConfig           *tls.Config // client config for TLS modes; nil for TLSNone
	Pool                string      // empty: in no pool, reachable only by a backend route
	Weight              int         // >= 1; 0 counts as 1
	ConnectTimeout      time.Duration
	LoginTimeout        time.Duration
	AllowPlaintextLogin bool
	ForwardClient       string // none|id|proxy-v1|proxy-v2 (not used yet); empty means none
	MasterUser          string
	MasterPassword      string
}

// weight is the effective rendezvous weight.
func (b *Backend) weight() int {
	return max(b.Weight, 1)
}

// Route sends a user, or every user of a domain, to one backend or to a pool.
// Exactly one of User and Domain is set, and exactly one of Backend and Pool.
// User and Domain are compared in normalized form (see [NormalizeUser]); a
// domain matches the part of the user name after the last '@'.
type Route struct {
	User, Domain, Backend, Pool string
}

// normalized returns r with User and Domain normalized.
func (r Route) normalized() Route {
	r.User = NormalizeUser(r.User)
	r.Domain = NormalizeUser(r.Domain)
	return r
}

// String describes the route, e.g. "user alice@example.org -> backend store2".
func (r Route) String() string {
	return r.source() + " -> " + r.target()
}

func (r Route) source() string {
	switch {
	case r.User != "":
		return "user " + r.User
	case r.Domain != "":
		return "domain " + r.Domain
	}
	return "(no user or domain)"
}

func (r Route) target() string {
	switch {
	case r.Backend != "":
		return "backend " + r.Backend
	case r.Pool != "":
		return "pool " + r.Pool
	}
	return "(no backend or pool)"
}

// config is a validated configuration, ready to be stored and compiled.
type config struct {
	backends    []*Backend // sorted by name
	routes      []Route    // normalized
	defaultPool string
}

// validate checks backends and routes and reports every problem at once.
func validate(backends []*Backend, routes []Route, defaultPool string) (*config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	byName := make(map[string]*Backend, len(backends))
	pools := make(map[string]bool)
	cfg := &config{defaultPool: defaultPool}
	for i, b := range backends {
		switch {
		case b == nil:
			bad("backend #%d is nil", i+1)
			continue
		case b.Name == "":
			bad("backend #%d has no name", i+1)
			continue
		case byName[b.Name] != nil:
			bad("backend %q defined twice", b.Name)
			continue
		}
		byName[b.Name] = b
		if b.Address == "" {
			bad("backend %q has no address", b.Name)
		}
		if !b.TLS.Valid() {
			bad("backend %q: unknown tls mode %q", b.Name, b.TLS)
		}
		if b.TLS != "" && b.TLS != TLSNone && b.TLSConfig == nil {
			bad("backend %q: tls mode %s needs a TLS config", b.Name, b.TLS)
		}
		switch b.ForwardClient {
		case "", "none", "id", "proxy-v1", "proxy-v2":
		default:
			bad("backend %q: unknown forward_client %q", b.Name, b.ForwardClient)
		}
		if b.Weight < 0 {
			bad("backend %q: weight %d is negative", b.Name, b.Weight)
		}
		if b.Pool != "" {
			pools[b.Pool] = true
		}
		cfg.backends = append(cfg.backends, b)
	}
	sortBackends(cfg.backends)

	seen := make(map[Route]bool)
	for _, r := range routes {
		n := r.normalized()
		switch {
		case (n.User == "") == (n.Domain == ""):
			bad("route %v: set exactly one of user and domain", r)
			continue
		case (n.Backend == "") == (n.Pool == ""):
			bad("route %v: set exactly one of backend and pool", r)
			continue
		case strings.Contains(n.Domain, "@"):
			bad("route %v: a domain must not contain '@'", r)
			continue
		case n.Backend != "" && byName[n.Backend] == nil:
			bad("route %v: unknown backend %q", r, n.Backend)
			continue
		case n.Pool != "" && !pools[n.Pool]:
			bad("route %v: unknown pool %q (no backend is in it)", r, n.Pool)
			continue
		}
		key := Route{User: n.User, Domain: n.Domain}
		if seen[key] {
			bad("route %v: %s has more than one route", r, key.source())
			continue
		}
		seen[key] = true
		cfg.routes = append(cfg.routes, n)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("routing: invalid configuration: %w", errors.Join(errs...))
	}
	return cfg, nil
}

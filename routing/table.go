package routing

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"
)

// ErrNoBackend is returned by [Table.Resolve] when no backend can serve the
// user: there is no route and the default pool has no backends.
var ErrNoBackend = errors.New("routing: no backend available")

// Table routes users to backends and indexes the live sessions. It is safe
// for concurrent use. Create it with [NewTable]; the zero value is not
// usable.
//
// Backends, routes and sessions are stored in an in-process go-memdb
// database; see the package documentation for how that is meant to become a
// shared store.
type Table struct {
	db       *memdb.MemDB
	resolver atomic.Pointer[resolver] // compiled view of the config for Resolve
	sessions atomic.Int64             // number of sessions in the session table
}

// NewTable validates the backends and routes and returns a table serving
// them. Every problem is reported at once. A route must name an existing
// backend, or a pool that at least one backend is in. defaultPool may be
// empty or have no backends: unrouted users then get [ErrNoBackend].
//
// The table keeps the *Backend pointers; see [Backend].
func NewTable(backends []*Backend, routes []Route, defaultPool string) (*Table, error) {
	db, err := newDB()
	if err != nil {
		return nil, err
	}
	t := &Table{db: db}
	if err := t.Replace(backends, routes, defaultPool); err != nil {
		return nil, err
	}
	return t, nil
}

// Replace atomically swaps the backends, routes and default pool, e.g. on a
// configuration reload. It validates like [NewTable]; on error the table is
// unchanged. Sessions are left untouched, including those on backends that
// no longer exist.
func (t *Table) Replace(backends []*Backend, routes []Route, defaultPool string) error {
	cfg, err := validate(backends, routes, defaultPool)
	if err != nil {
		return err
	}
	r := compile(cfg)
	return t.writeConfig(cfg, func() { t.resolver.Store(r) })
}

// Resolve returns the backends that may serve user, best first. The user
// name is normalized first (see [NormalizeUser]).
//
// An exact user route wins; otherwise a domain route on the part after the
// last '@'; otherwise the default pool. A route to a backend yields just
// that backend. A route to a pool, and the default pool, yield all of the
// pool's backends ordered by weighted rendezvous hashing on the normalized
// user name: the first is the user's home backend, the rest are the failover
// order. The order depends only on the user and the pool's backend names and
// weights, so it is the same on every imapedge instance.
//
// It returns [ErrNoBackend] (possibly wrapped) when no backend is available.
// The returned slice is the caller's; the backends must not be modified.
func (t *Table) Resolve(user string) ([]*Backend, error) {
	r := t.resolver.Load()
	u := NormalizeUser(user)
	if tgt, ok := r.users[u]; ok {
		return tgt.candidates(u)
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		// A suffix after '@' of an NFC string is itself NFC ('@' never
		// composes), so the domain is already normalized.
		if tgt, ok := r.domains[u[i+1:]]; ok {
			return tgt.candidates(u)
		}
	}
	return r.defaultTarget.candidates(u)
}

// Backend returns the backend with the given name, or nil.
func (t *Table) Backend(name string) *Backend {
	return t.backendByName(name)
}

// Backends returns all backends sorted by name.
func (t *Table) Backends() []*Backend {
	return t.backendRows(indexID)
}

// Pool returns the backends in the named pool, sorted by name.
func (t *Table) Pool(name string) []*Backend {
	if name == "" {
		return nil
	}
	return t.backendRows(indexPool, name)
}

// Routes returns the static routes in normalized form: domain routes sorted
// by domain, then user routes sorted by user.
func (t *Table) Routes() []Route {
	return t.routeRows()
}

// DefaultPool returns the name of the pool unrouted users are hashed over.
func (t *Table) DefaultPool() string {
	return t.resolver.Load().defaultPool
}

// resolver is an immutable, pre-compiled view of one configuration. Resolve
// reads it without locks; Replace swaps it.
type resolver struct {
	users         map[string]target // normalized user -> target
	domains       map[string]target // normalized domain -> target
	defaultPool   string
	defaultTarget target
}

// target is where a route points: a single backend, or a pool (sorted by
// backend name; empty if the pool has no backends).
type target struct {
	backend  *Backend
	pool     []*Backend
	poolName string
}

// candidates returns the ordered candidates of the target for the
// normalized user.
func (tg target) candidates(user string) ([]*Backend, error) {
	switch {
	case tg.backend != nil:
		return []*Backend{tg.backend}, nil
	case len(tg.pool) == 0:
		if tg.poolName == "" {
			return nil, fmt.Errorf("%w: no route and no default pool", ErrNoBackend)
		}
		return nil, fmt.Errorf("%w: pool %q has no backends", ErrNoBackend, tg.poolName)
	case len(tg.pool) == 1:
		return []*Backend{tg.pool[0]}, nil
	}
	return rank(tg.pool, user), nil
}

// compile builds the resolver for a validated configuration.
func compile(cfg *config) *resolver {
	pools := make(map[string][]*Backend)
	byName := make(map[string]*Backend, len(cfg.backends))
	for _, b := range cfg.backends { // sorted by name, so every pool is too
		byName[b.Name] = b
		if b.Pool != "" {
			pools[b.Pool] = append(pools[b.Pool], b)
		}
	}
	targetOf := func(r Route) target {
		if r.Backend != "" {
			return target{backend: byName[r.Backend]}
		}
		return target{pool: pools[r.Pool], poolName: r.Pool}
	}
	res := &resolver{
		users:         make(map[string]target),
		domains:       make(map[string]target),
		defaultPool:   cfg.defaultPool,
		defaultTarget: target{pool: pools[cfg.defaultPool], poolName: cfg.defaultPool},
	}
	for _, r := range cfg.routes {
		if r.User != "" {
			res.users[r.User] = targetOf(r)
		} else {
			res.domains[r.Domain] = targetOf(r)
		}
	}
	return res
}

func sortBackends(bs []*Backend) {
	slices.SortFunc(bs, func(a, b *Backend) int { return cmp.Compare(a.Name, b.Name) })
}

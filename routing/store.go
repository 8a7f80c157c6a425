package routing

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// This file holds every access to the memdb database. Keep it that way: these
// methods are the seam where a shared, multi-node store will plug in (see the
// package documentation).

// Table and index names.
const (
	tableBackend = "backend"
	tableRoute   = "route"
	tableSession = "session"

	indexID       = "id"
	indexPool     = "pool"
	indexUser     = "user"
	indexDomain   = "domain"
	indexBackend  = "backend"
	indexClientIP = "client_ip"
)

// routeRow is how a Route is stored: Key is unique per source
// ("user\x00alice@example.org" or "domain\x00example.org").
type routeRow struct {
	Key string
	Route
}

func newRouteRow(r Route) *routeRow {
	key := "domain\x00" + r.Domain
	if r.User != "" {
		key = "user\x00" + r.User
	}
	return &routeRow{Key: key, Route: r}
}

func stringIndex(name, field string, unique, allowMissing bool) *memdb.IndexSchema {
	return &memdb.IndexSchema{
		Name:         name,
		Unique:       unique,
		AllowMissing: allowMissing,
		Indexer:      &memdb.StringFieldIndex{Field: field},
	}
}

func indexes(ix ...*memdb.IndexSchema) map[string]*memdb.IndexSchema {
	m := make(map[string]*memdb.IndexSchema, len(ix))
	for _, i := range ix {
		m[i.Name] = i
	}
	return m
}

// schema is the memdb schema of a Table.
func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableBackend: {
			Name: tableBackend,
			Indexes: indexes(
				stringIndex(indexID, "Name", true, false),
				stringIndex(indexPool, "Pool", false, true),
			),
		},
		tableRoute: {
			Name: tableRoute,
			Indexes: indexes(
				stringIndex(indexID, "Key", true, false),
				stringIndex(indexUser, "User", true, true),
				stringIndex(indexDomain, "Domain", true, true),
			),
		},
		tableSession: {
			Name: tableSession,
			Indexes: indexes(
				stringIndex(indexID, "ID", true, false),
				stringIndex(indexUser, "User", false, true),
				stringIndex(indexBackend, "Backend", false, true),
				stringIndex(indexClientIP, "ClientIP", false, true),
			),
		},
	}}
}

func newDB() (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("routing: memdb schema: %w", err)
	}
	return db, nil
}

// writeConfig replaces all backends and routes in one transaction. publish
// runs while the write transaction is still open, just before the commit, so
// that concurrent config writes publish in the same order they commit.
func (t *Table) writeConfig(cfg *config, publish func()) error {
	txn := t.db.Txn(true)
	defer txn.Abort()
	if _, err := txn.DeleteAll(tableBackend, indexID); err != nil {
		return fmt.Errorf("routing: clear backends: %w", err)
	}
	if _, err := txn.DeleteAll(tableRoute, indexID); err != nil {
		return fmt.Errorf("routing: clear routes: %w", err)
	}
	for _, b := range cfg.backends {
		if err := txn.Insert(tableBackend, b); err != nil {
			return fmt.Errorf("routing: store backend %q: %w", b.Name, err)
		}
	}
	for _, r := range cfg.routes {
		if err := txn.Insert(tableRoute, newRouteRow(r)); err != nil {
			return fmt.Errorf("routing: store route %v: %w", r, err)
		}
	}
	publish()
	txn.Commit()
	return nil
}

// backendByName returns the named backend or nil.
func (t *Table) backendByName(name string) *Backend {
	obj, err := t.db.Txn(false).First(tableBackend, indexID, name)
	if err != nil || obj == nil {
		return nil
	}
	return obj.(*Backend)
}

// backendRows returns the backends matching one index query, in index
// order (which is name order within one index value).
func (t *Table) backendRows(index string, args ...any) []*Backend {
	it, err := t.db.Txn(false).Get(tableBackend, index, args...)
	if err != nil {
		return nil // only a schema mistake can get here
	}
	var out []*Backend
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*Backend))
	}
	return out
}

// routeRows returns all routes: domain routes sorted by domain, then user
// routes sorted by user.
func (t *Table) routeRows() []Route {
	it, err := t.db.Txn(false).Get(tableRoute, indexID)
	if err != nil {
		return nil
	}
	var out []Route
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*routeRow).Route)
	}
	return out
}

// insertSession stores s; its ID must not be in use.
func (t *Table) insertSession(s *Session) error {
	txn := t.db.Txn(true)
	defer txn.Abort()
	existing, err := txn.First(tableSession, indexID, s.ID)
	if err != nil {
		return fmt.Errorf("routing: add session: %w", err)
	}
	if existing != nil {
		return fmt.Errorf("routing: add session: id %q already registered", s.ID)
	}
	if err := txn.Insert(tableSession, s); err != nil {
		return fmt.Errorf("routing: add session %q: %w", s.ID, err)
	}
	t.sessions.Add(1)
	txn.Commit()
	return nil
}

// deleteSession removes the session with the given ID, if there is one.
func (t *Table) deleteSession(id string) {
	txn := t.db.Txn(true)
	defer txn.Abort()
	obj, err := txn.First(tableSession, indexID, id)
	if err != nil || obj == nil {
		return
	}
	if err := txn.Delete(tableSession, obj); err != nil {
		return
	}
	t.sessions.Add(-1)
	txn.Commit()
}

// querySessions returns the sessions matching one index query, sorted by
// start time, then ID.
func (t *Table) querySessions(index string, args ...any) []*Session {
	it, err := t.db.Txn(false).Get(tableSession, index, args...)
	if err != nil {
		return nil
	}
	var out []*Session
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*Session))
	}
	sortSessions(out)
	return out
}

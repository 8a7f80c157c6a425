// Package routing decides which IMAP backend serves a user and keeps the
// table of live sessions.
//
// A [Table] holds the configured backends, the static routes (user or domain
// to a backend or a pool) and the sessions the proxy has registered. Users
// without a route are spread over the default pool by weighted rendezvous
// (highest-random-weight) hashing, so every imapedge instance with the same
// configuration sends a given user to the same backend, and adding or
// removing a backend moves only the users that must move.
//
// User names are compared in their normalized form, see [NormalizeUser].
//
// # Storage and the future shared store
//
// Backends, routes and sessions live in one hashicorp/go-memdb database. All
// memdb access is confined to the small set of methods in store.go
// (writeConfig, backendByName, backendRows, routeRows, insertSession,
// deleteSession, querySessions). The state that several imapedge nodes will one day share —
// route overrides, holds, freezes, moves, auth-failure counters and the
// session index — is meant to move behind a small Store interface with these
// operations: the in-process memdb implementation stays the default and a
// Redis-backed one arrives with scale-out. Keeping the memdb calls in those
// few methods is what makes that swap a local change.
//
// [Table.Resolve] does not open a memdb transaction: it reads an immutable,
// pre-compiled view of the static configuration that every [Table.Replace]
// rebuilds and publishes atomically together with the memdb write. That
// keeps the login path free of locks and of allocations beyond the returned
// slice. Shared runtime overrides, once they exist, are consulted before that
// view.
package routing

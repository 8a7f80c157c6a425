package routing

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// Session is one live, authenticated client session as registered by the
// proxy. A Session must not be modified after [Table.AddSession].
type Session struct {
	ID       string
	User     string // normalized; AddSession normalizes it
	ClientIP string
	Backend  string // backend name
	Listener string // listener name
	Start    time.Time

	// Handle is opaque to routing: the proxy stores its own handle here
	// (e.g. to kick the session later).
	Handle any
}

// AddSession registers a live session. s.ID must be non-empty and not in
// use. s.User is normalized in place before s is stored.
func (t *Table) AddSession(s *Session) error {
	if s == nil || s.ID == "" {
		return errors.New("routing: add session: empty session id")
	}
	s.User = NormalizeUser(s.User)
	return t.insertSession(s)
}

// RemoveSession unregisters the session with the given ID. Removing an
// unknown ID does nothing.
func (t *Table) RemoveSession(id string) {
	t.deleteSession(id)
}

// Sessions returns all sessions, sorted by start time, then ID.
func (t *Table) Sessions() []*Session {
	return t.querySessions(indexID)
}

// SessionsByUser returns the sessions of a user (normalized before the
// lookup), sorted by start time, then ID.
func (t *Table) SessionsByUser(user string) []*Session {
	u := NormalizeUser(user)
	if u == "" {
		return nil
	}
	return t.querySessions(indexUser, u)
}

// SessionsByBackend returns the sessions on the named backend, sorted by
// start time, then ID.
func (t *Table) SessionsByBackend(name string) []*Session {
	if name == "" {
		return nil
	}
	return t.querySessions(indexBackend, name)
}

// SessionsByClientIP returns the sessions from a client address, sorted by
// start time, then ID. ip must be in the same textual form the proxy used
// when registering the session.
func (t *Table) SessionsByClientIP(ip string) []*Session {
	if ip == "" {
		return nil
	}
	return t.querySessions(indexClientIP, ip)
}

// SessionCount returns the number of registered sessions.
func (t *Table) SessionCount() int {
	return int(t.sessions.Load())
}

func sortSessions(ss []*Session) {
	slices.SortFunc(ss, func(a, b *Session) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

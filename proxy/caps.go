package proxy

import (
	"strings"
	"sync"
)

// capList is a backend's capability list as announced, with what a
// logged-in client may see of it (filterCaps) worked out once.
type capList struct {
	names    []string
	filtered [2]string // [0]: COMPRESS=DEFLATE removed, [1]: kept if offered
	deflate  bool      // filtered[1] lists COMPRESS=DEFLATE
}

func (c *capList) has(name string) bool {
	return c != nil && hasCap(c.names, name)
}

// filter returns the list a logged-in client sees (filterCaps).
func (c *capList) filter(keepDeflate bool) (string, bool) {
	if keepDeflate {
		return c.filtered[1], c.deflate
	}
	return c.filtered[0], false
}

// capMemo remembers capability lists by their text: a backend announces
// the same few lists on every connection, so a login parses and filters
// nothing. The lists are shared and never modified. Bounded, so that a
// backend announcing ever-new lists costs only the parsing.
var capMemo struct {
	sync.RWMutex
	m map[string]*capList
}

const capMemoMax = 64

// parseCaps returns the capability list of text, the words after
// CAPABILITY.
func parseCaps(text []byte) *capList {
	capMemo.RLock()
	c := capMemo.m[string(text)]
	capMemo.RUnlock()
	if c != nil {
		return c
	}
	c = &capList{names: strings.Fields(string(text))}
	c.filtered[0], _ = filterCaps(c.names, false)
	c.filtered[1], c.deflate = filterCaps(c.names, true)
	capMemo.Lock()
	if capMemo.m == nil {
		capMemo.m = make(map[string]*capList)
	}
	if len(capMemo.m) < capMemoMax {
		capMemo.m[string(text)] = c
	}
	capMemo.Unlock()
	return c
}

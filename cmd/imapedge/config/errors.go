package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	// Line and Column locate the problem in the file, both 1-based. For a
	// problem about a key's value they point at the key; for a list entry,
	// at the entry. Zero means unknown: a Line of 0 is a problem with no
	// place in the file (e.g. a required section missing entirely), a
	// Column of 0 a YAML syntax error, for which the parser gives only a line.
	Line, Column int
	// Path names the offending key, e.g. "backends[1].tls"; empty for
	// problems about the whole file.
	Path string
	// Msg says what is wrong, e.g. `"tsl" is not one of none, starttls, implicit`.
	Msg string
}

// String formats p as "LINE:COL: PATH: MSG", leaving out the parts that are
// unknown (YAML syntax errors have a line but no column).
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Line > 0 && p.Column > 0:
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	case p.Line > 0:
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is the error returned by [Load] and [Parse]: every problem found in
// one file, in file order.
type Errors struct {
	// File is the name given to [Parse] (the path for [Load]).
	File string
	// Problems holds at least one problem.
	Problems []Problem
}

// Error lists every problem, one per line, each formatted as
// "FILE:LINE:COL: PATH: MSG", e.g.
//
//	proxy.yaml:12:5: backends[1].tls: "tsl" is not one of none, starttls, implicit
func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			b.WriteByte(':')
		} else {
			b.WriteString(": ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// sortProblems orders problems by position, keeping the discovery order of
// problems at the same place. Problems without a position come last.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

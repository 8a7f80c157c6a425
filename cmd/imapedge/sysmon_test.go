package main

import (
	"slices"
	"testing"
)

func TestQuietSysmonEnv(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		environ []string
		want    []string // nil: no re-exec
	}{
		{"serve", []string{"serve", "-config", "x"}, []string{"HOME=/h"}, []string{"HOME=/h", "GODEBUG=" + quietSysmon}},
		{"serve keeps GODEBUG", []string{"serve"}, []string{"GODEBUG=madvdontneed=1", "A=b"}, []string{"A=b", "GODEBUG=madvdontneed=1," + quietSysmon}},
		{"operator chose schedtrace", []string{"serve"}, []string{"GODEBUG=gctrace=1,schedtrace=0"}, nil},
		{"re-executed already", []string{"serve"}, []string{"GODEBUG=" + quietSysmon}, nil},
		{"check", []string{"check", "-config", "x"}, []string{"HOME=/h"}, nil},
		{"no command", nil, []string{"HOME=/h"}, nil},
	} {
		got := quietSysmonEnv(c.args, c.environ)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendLogTimeMatchesFormat(t *testing.T) {
	zones := []*time.Location{
		time.UTC,
		time.FixedZone("IST", 5*3600+1800),
		time.FixedZone("PST", -8*3600),
		time.FixedZone("ZERO", 0), // offset 0 under another name prints Z too
		time.FixedZone("NPT", 5*3600+45*60),
		time.FixedZone("LMT", -(4*3600 + 56*60 + 2)), // seconds in the offset
	}
	base := []time.Time{
		time.Date(2026, 11, 26, 16, 21, 8, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 100000000, time.UTC),
		time.Date(2024, 7, 1, 12, 0, 0, 123456789, time.UTC),
		time.Date(2024, 7, 1, 12, 0, 0, 120000000, time.UTC),
		time.Date(2024, 7, 1, 12, 0, 0, 1000, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 5, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		base = append(base, time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)))
	}
	for _, tt := range base {
		for _, z := range zones {
			tz := tt.In(z)
			for _, c := range []struct {
				nano   bool
				layout string
			}{{true, layoutRFC3339Nano}, {false, layoutISO8601}} {
				got := string(appendLogTime(nil, tz, c.nano))
				if want := tz.Format(c.layout); got != want {
					t.Fatalf("appendLogTime(%v, nano=%v) = %q, want %q", tz, c.nano, got, want)
				}
			}
		}
	}
}

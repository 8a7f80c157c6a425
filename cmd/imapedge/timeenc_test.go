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
				want := tz.Format(c.layout)
				if got := string(appendLogTime(nil, tz, c.nano)); got != want {
					t.Fatalf("appendLogTime(%v, nano=%v) = %q, want %q", tz, c.nano, got, want)
				}
				cache := &isoCache
				if c.nano {
					cache = &nanoCache
				}
				// Twice: the second call is served from the cache.
				for range 2 {
					if got := string(cache.append(nil, tz)); got != want {
						t.Fatalf("cached (%v, nano=%v) = %q, want %q", tz, c.nano, got, want)
					}
				}
			}
		}
	}
}

// Lines within one second take the date and zone from the cache and only
// print their own fraction.
func TestSecondCacheWithinSecond(t *testing.T) {
	z := time.FixedZone("IST", 5*3600+1800)
	sec := time.Date(2026, 11, 26, 16, 21, 8, 0, z)
	for _, ns := range []int{0, 5, 120000000, 999999999, 1000, 0} {
		tt := sec.Add(time.Duration(ns))
		if got, want := string(nanoCache.append(nil, tt)), tt.Format(layoutRFC3339Nano); got != want {
			t.Fatalf("nano %d: %q, want %q", ns, got, want)
		}
		if got, want := string(isoCache.append(nil, tt)), tt.Format(layoutISO8601); got != want {
			t.Fatalf("iso %d: %q, want %q", ns, got, want)
		}
	}
	// The same instant in another zone is not taken from the cache.
	tt := sec.Add(5).UTC()
	if got, want := string(nanoCache.append(nil, tt)), tt.Format(layoutRFC3339Nano); got != want {
		t.Fatalf("utc: %q, want %q", got, want)
	}
}

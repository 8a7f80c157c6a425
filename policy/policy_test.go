package policy

import (
	"net/netip"
	"testing"
	"time"
)

func TestNetworksContains(t *testing.T) {
	n, err := ParseNetworks([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"::ffff:10.9.9.9", true},
		{"2001:db8::1", true},
		{"2001:db9::1", false},
		{"127.0.0.1", false},
	} {
		if got := n.Contains(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if _, err := ParseNetworks([]string{"10.0.0.0/33"}); err == nil {
		t.Error("bad prefix accepted")
	}
	if _, err := ParseNetworks([]string{"example.org"}); err == nil {
		t.Error("host name accepted")
	}
}

func TestPlaintextAllowedDefaultRefusesLoopback(t *testing.T) {
	p := Default()
	if p.PlaintextAllowed(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("loopback must not be exempt unless listed")
	}
	p.PlaintextAuthNetworks, _ = ParseNetworks([]string{"127.0.0.0/8"})
	if !p.PlaintextAllowed(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("listed network refused")
	}
}

func TestFailureDelay(t *testing.T) {
	p := Default()
	want := []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for n, w := range want {
		if got := p.FailureDelay(n); got != w {
			t.Errorf("FailureDelay(%d) = %v, want %v", n, got, w)
		}
	}
	p.FailureBaseDelay = 0
	if p.FailureDelay(3) != 0 {
		t.Error("zero base delay must disable the delay")
	}
}

package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// parseDuration parses a duration in Go syntax ("30s", "31m", "1h30m") or a
// bare "0". Negative durations are rejected.
func parseDuration(s string) (time.Duration, string) {
	if s == "0" {
		return 0, ""
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Sprintf("%q is not a duration like 30s, 31m or 1h30m", s)
	}
	if d < 0 {
		return 0, fmt.Sprintf("%s must not be negative", s)
	}
	return d, ""
}

// sizeUnits are the accepted size suffixes, longest first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10},
	{"MiB", 1 << 20},
	{"GiB", 1 << 30},
	{"B", 1},
}

// parseSize parses a size: a non-negative decimal integer optionally
// followed by B, KiB, MiB or GiB ("512", "4096B", "16KiB", "1MiB").
func parseSize(s string) (int64, string) {
	bad := fmt.Sprintf("%q is not a size like 512, 4096B, 16KiB or 1MiB", s)
	// Decimal units are a likely mistake worth a precise message.
	for _, dec := range []string{"KB", "MB", "GB", "kB", "K", "M", "G", "k"} {
		if rest, ok := strings.CutSuffix(s, dec); ok && isDigits(rest) {
			return 0, fmt.Sprintf("%q: decimal units are not accepted; use B, KiB, MiB or GiB", s)
		}
	}
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	if strings.HasPrefix(num, "-") && isDigits(num[1:]) {
		return 0, fmt.Sprintf("%s must not be negative", s)
	}
	if !isDigits(num) {
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Sprintf("%s is too large", s)
	}
	return n * mult, ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parsePrefix parses a CIDR prefix or a bare address (a single-address
// prefix). Zones and prefixes with host bits set are rejected.
func parsePrefix(s string) (netip.Prefix, string) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not a network like 10.0.0.0/8 or 2001:db8::/32", s)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Sprintf("%q has host bits set (did you mean %s?)", s, m)
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or a network like 10.0.0.0/8", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// hostPort splits a "host:port" address. needHost requires a non-empty
// host; allowZero permits port 0 (an ephemeral port). It returns the host
// or a message.
func hostPort(addr string, needHost, allowZero bool) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return "", fmt.Sprintf("%q has no port; write host:port", addr)
		}
		return "", fmt.Sprintf("%q is not a host:port address", addr)
	}
	if needHost && host == "" {
		return "", fmt.Sprintf("%q has no host", addr)
	}
	if strings.ContainsAny(host, " \t/") {
		return "", fmt.Sprintf("%q has an invalid host", addr)
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if allowZero {
		lo = 0
	}
	if !isDigits(port) || err != nil || n < lo || n > 65535 {
		return "", fmt.Sprintf("%q: port %q must be a number from %d to 65535", addr, port, lo)
	}
	return host, ""
}

// isLoopback reports whether host is a loopback IP address or "localhost".
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

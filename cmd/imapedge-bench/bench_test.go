package main

import (
	"bufio"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	tests := []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"empty", nil, 50, 0},
		{"one", []float64{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50},
		{"p99 of 1..100", hundred, 99, 99},
		{"p100 of 1..100", hundred, 100, 100},
		{"p50 of four", []float64{1, 2, 3, 4}, 50, 2},
		{"p99 of four", []float64{1, 2, 3, 4}, 99, 4},
		{"tiny p", []float64{1, 2, 3}, 0.001, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := median(in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("median modified its input: %v", in)
			}
		}
	}
}

func TestParseStat(t *testing.T) {
	// A comm with spaces and parentheses, as seen for Dovecot's processes.
	line := "4242 (imap-login (x) y) S 4200 4200 4200 0 -1 4194560 1000 20 0 0 123 45 67 89 20 0 1 0 555 10000000 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n"
	p, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, ppid: 4200, pgid: 4200, state: 'S', utime: 123, stime: 45, cutime: 67, cstime: 89}
	if p != want {
		t.Errorf("parseStat = %+v, want %+v", p, want)
	}
	if got := p.cpuTicks(); got != 123+45+67+89 {
		t.Errorf("cpuTicks = %d", got)
	}
	for _, bad := range []string{"", "12 noparen S 1 1", "12 (x) S 1 1 1", "x (y) S 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "12 (x) S 1 1 1 1 1 1 1 1 1 1 -5 1 1 1"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestParseStatSelf(t *testing.T) {
	p, err := readStat(-1)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if p.pid <= 0 || p.pgid <= 0 {
		t.Errorf("readStat(self) = %+v", p)
	}
	if clockTick() <= 0 {
		t.Error("clockTick <= 0")
	}
}

func TestParseSchedstat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"123456789 2345 67\n", 123456789, true},
		{"0 0 0", 0, true},
		{"", 0, false},
		{"x 1 2", 0, false},
		{"-5 1 2", 0, false},
	} {
		got, err := parseSchedstat([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSchedstat(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestTaskNanosCountsThisProcess: the precise CPU reading of the test
// process grows along with the kernel's tick accounting of it: a busy loop
// runs until /proc/self/stat shows 50 ms (5 ticks) more, which is at
// least 40 ms of CPU; the nanosecond reading must show at least 20.
func TestTaskNanosCountsThisProcess(t *testing.T) {
	ticks := func() uint64 {
		p, err := readStat(-1)
		if err != nil {
			t.Skipf("no /proc: %v", err)
		}
		return p.utime + p.stime
	}
	before, ok := taskNanos(os.Getpid())
	if !ok {
		t.Skip("no /proc/PID/task/*/schedstat here")
	}
	t0, x := ticks(), 0
	for giveUp := time.Now().Add(10 * time.Second); ticks() < t0+5; x++ {
		if time.Now().After(giveUp) {
			t.Skip("the process got no CPU for 10 s")
		}
	}
	after, _ := taskNanos(os.Getpid())
	if got := time.Duration(after - before); got < 20*time.Millisecond {
		t.Errorf("taskNanos grew by %v while the tick accounting grew by 5 ticks (%d loops)", got, x)
	}
	if got := groupCPUPrecise(0); got != 0 {
		t.Errorf("groupCPUPrecise(0) = %v, want 0", got)
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t  20000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n"
	if v, ok := parseVmRSS([]byte(status)); !ok || v != 5120 {
		t.Errorf("parseVmRSS = %d, %v; want 5120, true", v, ok)
	}
	if _, ok := parseVmRSS([]byte("Name:\tkthreadd\nState:\tS\n")); ok {
		t.Error("parseVmRSS found VmRSS in a kernel thread's status")
	}
}

func TestLiteralSize(t *testing.T) {
	tests := []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {1048576}\r\n", 1048576, true},
		{"* 1 FETCH (BODY[] {0}\r\n", 0, true},
		{"a APPEND INBOX {12+}\r\n", 12, true},
		{"* OK {5}\n", 5, true},
		{"* OK done\r\n", 0, false},
		{"* OK {}\r\n", 0, false},
		{"* OK {x}\r\n", 0, false},
		{"* OK {-1}\r\n", 0, false},
		{"* OK {5} trailing\r\n", 0, false},
		{"}\r\n", 0, false},
	}
	for _, tt := range tests {
		n, ok := literalSize([]byte(tt.line))
		if n != tt.n || ok != tt.ok {
			t.Errorf("literalSize(%q) = %d, %v; want %d, %v", tt.line, n, ok, tt.n, tt.ok)
		}
	}
}

// TestIMAPConnSkipsLiterals runs the client against a scripted server
// whose FETCH responses carry literals that look like tagged lines.
func TestIMAPConnSkipsLiterals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	body := "b1 OK fake\r\n* BYE inside\r\n"
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		c.Write([]byte("* OK ready\r\n"))
		r.ReadString('\n') // b1 FETCH
		c.Write([]byte("* 1 FETCH (BODY[] {" + strconv.Itoa(len(body)) + "}\r\n" + body + " FLAGS (\\Seen))\r\n"))
		c.Write([]byte("* 2 FETCH (BODY[] {" + strconv.Itoa(len(body)) + "}\r\n" + body + ")\r\nb1 OK FETCH done\r\n"))
		r.ReadString('\n') // b2 NOOP
		c.Write([]byte("b2 NO nope\r\n"))
	}()
	c, err := openIMAP(ln.Addr().String(), nil, 16, 5*time.Second) // tiny buffer: long lines span reads
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Command("FETCH 1:* BODY.PEEK[]")
	if err != nil {
		t.Fatal(err)
	}
	if r.literals != 2 || r.literalLen != int64(2*len(body)) || r.untagged != 2 {
		t.Errorf("FETCH = %+v, want 2 literals of %d bytes and 2 untagged", r, 2*len(body))
	}
	if r.text != "b1 OK FETCH done" {
		t.Errorf("tagged line %q", r.text)
	}
	if _, err := c.Command("NOOP"); err == nil || !strings.Contains(err.Error(), "NO nope") {
		t.Errorf("NOOP error = %v, want the NO", err)
	}
}

func TestFormatNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0.00", 1.234: "1.23", 12.34: "12.3", 1234.5: "1234", -3.5: "-3.50"} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestBuildTable(t *testing.T) {
	sz := sizes{idle: 2000, idleFull: 8000}
	var results []runResult
	for round, v := range []float64{100, 300, 200} { // median 200
		results = append(results,
			runResult{Scenario: scLogins, Target: tDirect, Front: frontPlain, Round: round + 1, SessionsPerS: 2 * v},
			runResult{Scenario: scLogins, Target: tHAProxy, Front: frontPlain, Round: round + 1, SessionsPerS: v, ProxyCPUMsPerLogin: 0.5},
			runResult{Scenario: scLogins, Target: tImapedge, Front: frontPlain, Round: round + 1, SessionsPerS: v / 2, ProxyCPUMsPerLogin: 1},
		)
	}
	results = append(results,
		runResult{Scenario: scIdleFull, Target: tImapedge, Front: frontPlain, KiBPerSession: 12.5, Lost: 3, Errors: 3},
		runResult{Scenario: scLatency, Target: tNginx, Front: frontTLS, Errors: 2},
	)
	header, rows := buildTable(results, sz)
	wantHeader := "metric front direct haproxy nginx imapedge imapedge/direct imapedge/haproxy imapedge/nginx"
	if got := strings.Join(header, " "); got != wantHeader {
		t.Fatalf("header %q", got)
	}
	find := func(label, front string) []string {
		for _, r := range rows {
			if r[0] == label && r[1] == front {
				return r
			}
		}
		return nil
	}
	if got := find("logins/s", frontPlain); strings.Join(got, "|") != "logins/s|plain|400|200|–|100|0.25×|0.50×|–" {
		t.Errorf("logins/s row %q", got)
	}
	if got := find("proxy CPU ms/login", frontPlain); strings.Join(got, "|") != "proxy CPU ms/login|plain|–|0.50|–|1.00|–|2.00×|–" {
		t.Errorf("proxy CPU row %q", got)
	}
	if got := find("idle KiB/session (8000)", frontPlain); got == nil || got[5] != "12.5" {
		t.Errorf("idle-full row %q", got)
	}
	if got := find("fetch MB/s", frontPlain); got != nil {
		t.Errorf("a row for a scenario that did not run: %q", got)
	}
	if got := find("errors/lost", frontPlain); strings.Join(got[:6], "|") != "errors/lost|plain|0/0|0/0|–|0/3" {
		t.Errorf("errors/lost plain row %q", got)
	}
	if got := find("errors/lost", frontTLS); got[4] != "2/0" {
		t.Errorf("errors/lost tls row %q", got)
	}

	md := renderMarkdown(header, rows)
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	if len(lines) != len(rows)+2 {
		t.Fatalf("%d lines for %d rows:\n%s", len(lines), len(rows), md)
	}
	if !strings.HasPrefix(lines[1], "| ---") || !strings.Contains(lines[1], ": |") {
		t.Errorf("separator line %q", lines[1])
	}
	// Padded: every line has the same width in runes.
	w := len([]rune(lines[0]))
	for _, l := range lines {
		if len([]rune(l)) != w {
			t.Errorf("line width %d, want %d: %q", len([]rune(l)), w, l)
		}
	}
	if !strings.Contains(md, "|    400 |") {
		t.Errorf("numbers are not right-aligned:\n%s", md)
	}
}

func TestBuildRoundTable(t *testing.T) {
	sz := sizes{idle: 2000, idleFull: 8000}
	var results []runResult
	// nginx drifts from round to round; imapedge follows it within each
	// round. The ratio of medians (1.30/1.00) hides that imapedge is at
	// 0.9-1.1x nginx in every round.
	for i, v := range [][2]float64{{1.0, 1.1}, {1.5, 1.35}, {1.2, 1.3}} {
		results = append(results,
			runResult{Scenario: scLogins, Target: tNginx, Front: frontPlain, Round: i + 1, ProxyCPUMsPerLogin: v[0]},
			runResult{Scenario: scLogins, Target: tImapedge, Front: frontPlain, Round: i + 1, ProxyCPUMsPerLogin: v[1]},
		)
	}
	// One round only: no row.
	results = append(results,
		runResult{Scenario: scIdleFull, Target: tNginx, Front: frontPlain, Round: 1, KiBPerSession: 9.5},
		runResult{Scenario: scIdleFull, Target: tImapedge, Front: frontPlain, Round: 1, KiBPerSession: 6},
	)
	header, rows := buildRoundTable(results, sz)
	if got := strings.Join(header, "|"); got != "metric|front|imapedge/haproxy by round|median|imapedge/nginx by round|median" {
		t.Fatalf("header %q", got)
	}
	if len(rows) != 1 {
		t.Fatalf("rows %q, want one (CPU per plain login)", rows)
	}
	if got := strings.Join(rows[0], "|"); got != "proxy CPU ms/login|plain|–|–|1.10 0.90 1.08|1.08×" {
		t.Errorf("row %q", got)
	}
}

func TestRotate(t *testing.T) {
	ts := []*target{{name: "a"}, {name: "b"}, {name: "c"}}
	names := func(ts []*target) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.name)
		}
		return strings.Join(s, "")
	}
	for k, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := names(rotate(ts, k)); got != want {
			t.Errorf("rotate(%d) = %s, want %s", k, got, want)
		}
	}
}

func TestMessageSize(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, size := range []int{1024, 2048, 256 << 10, 1 << 20, 1025, 1026, 1027} {
		m := message(rng, "bench00", 0, size)
		if len(m) != size {
			t.Errorf("message(%d) has %d bytes", size, len(m))
		}
		if !strings.Contains(string(m), "\r\n\r\n") {
			t.Errorf("message(%d) has no header/body separator", size)
		}
	}
}

// ab refuses bad arguments before it starts anything.
func TestABArguments(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "imapedge")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-a", bin}, "-a OLD and -b NEW are required"},
		{[]string{"-a", bin, "-b", bin, "-front", "ssl"}, `-front "ssl"`},
		{[]string{"-a", bin, "-b", bin, "-rounds", "0"}, "-rounds must be at least 1"},
		{[]string{"-a", bin, "-b", bin, "-logins", "0", "-noops", "0"}, "-logins or -noops positive"},
		{[]string{"-a", bin, "-b", t.TempDir()}, "not a file"},
	} {
		err := abMain(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ab %q: %v, want an error about %q", c.args, err, c.want)
		}
	}
}

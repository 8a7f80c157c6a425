package main

import (
	"crypto/tls"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario names (JSON "scenario").
const (
	scTrace    = "trace"
	scLogins   = "logins"
	scLatency  = "latency"
	scFetch    = "fetch"
	scIdle     = "idle"
	scIdleFull = "idle-full"
)

// stallThreshold flags a login phase as a possible Nagle/delayed-ACK stall
// (Linux's delayed ACK is 40 ms at the least).
const stallThreshold = 35 * time.Millisecond

// sizes are the scenario parameters.
type sizes struct {
	logins       int           // sessions per target in the logins scenario
	loginWorkers int           // their concurrency
	loginChunks  int           // the targets take turns this many times per run
	noops        int           // NOOP round trips in the latency scenario
	fetchConns   int           // concurrent FETCH sessions
	fetchFor     time.Duration // repeat FETCH this long (0: fetchRounds)
	fetchRounds  int           // FETCH rounds per session when fetchFor is 0
	fetchMsgs    int           // messages of the fetch user
	fetchMsgSize int           // their size in bytes
	idle         int           // idle sessions per run
	idleFull     int           // idle sessions in the final pass
	idleOpen     int           // concurrency when opening and closing idle sessions
}

// fullSizes: 3000 logins per target and run (about 2-4 s) average out
// sub-second bursts of other tenants (1500 left round-to-round spreads of
// 15-20% on this kind of machine); taking turns in 6 chunks of 500 brought
// the spread of one round's imapedge/nginx CPU ratio from 0.85-1.14 (whole
// runs back to back) to 0.96-1.08 with two targets, 0.99-1.14 over full
// four-target runs.
var fullSizes = sizes{
	logins: 3000, loginWorkers: 4, loginChunks: 6,
	noops:      3000,
	fetchConns: 2, fetchFor: 4 * time.Second, fetchMsgs: 16, fetchMsgSize: 1 << 20,
	idle: 2000, idleFull: 8000, idleOpen: 32,
}

var quickSizes = sizes{
	logins: 50, loginWorkers: 4, loginChunks: 2,
	noops:      200,
	fetchConns: 2, fetchRounds: 2, fetchMsgs: 4, fetchMsgSize: 256 << 10,
	idle: 100, idleFull: 200, idleOpen: 32,
}

// runResult is one run: one JSON line in the -json file.
type runResult struct {
	Scenario string  `json:"scenario"`
	Target   string  `json:"target"`
	Front    string  `json:"front"`
	Round    int     `json:"round"`
	N        int     `json:"n"` // sessions, round trips or FETCH commands
	WallS    float64 `json:"wall_s"`

	SessionsPerS float64 `json:"sessions_per_s,omitempty"` // logins
	P50Ms        float64 `json:"p50_ms,omitempty"`         // logins; fetch: per FETCH
	P99Ms        float64 `json:"p99_ms,omitempty"`
	P50Us        float64 `json:"p50_us,omitempty"` // latency
	P99Us        float64 `json:"p99_us,omitempty"`
	Bytes        int64   `json:"bytes,omitempty"` // fetch: bytes received
	MBPerS       float64 `json:"mb_per_s,omitempty"`

	RSSBeforeKiB        int64   `json:"rss_before_kib,omitempty"` // idle: the proxy's
	RSSAfterKiB         int64   `json:"rss_after_kib,omitempty"`
	KiBPerSession       float64 `json:"kib_per_session,omitempty"`
	DovecotKiBPerSesion float64 `json:"dovecot_kib_per_session,omitempty"`

	Errors     int    `json:"errors"`
	Lost       int    `json:"lost"` // idle: sessions that failed at any point
	FirstError string `json:"first_error,omitempty"`

	ProxyCPUS          float64 `json:"proxy_cpu_s"`
	DovecotCPUS        float64 `json:"dovecot_cpu_s"`
	LoadgenCPUS        float64 `json:"loadgen_cpu_s"`
	ProxyCPUMsPerLogin float64 `json:"proxy_cpu_ms_per_login,omitempty"`
	ProxyCPUSPerGB     float64 `json:"proxy_cpu_s_per_gb,omitempty"`

	Phases []phase   `json:"phases,omitempty"` // trace
	Stalls []string  `json:"stalls,omitempty"`
	TLS    string    `json:"tls,omitempty"`
	Start  time.Time `json:"start"`
}

type phase struct {
	Name string  `json:"name"`
	Ms   float64 `json:"ms"`
}

// errCounter counts errors and keeps the first one.
type errCounter struct {
	mu    sync.Mutex
	n     int
	first string
}

func (e *errCounter) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.first == "" {
		e.first = err.Error()
	}
}

func (e *errCounter) into(r *runResult) {
	r.Errors += e.n
	if r.FirstError == "" {
		r.FirstError = e.first
	}
}

// bench holds what every scenario needs.
type bench struct {
	sz          sizes
	users       []string // for logins, latency and idle
	fetchUser   string
	password    string
	tlsConf     *tls.Config
	dovecotPgid int
	opTimeout   time.Duration
}

func (b *bench) tlsFor(front string) *tls.Config {
	if front == frontTLS {
		return b.tlsConf
	}
	return nil
}

func (b *bench) user(i int) string { return b.users[i%len(b.users)] }

// measure runs body and records wall time and the CPU used meanwhile by
// the proxy, Dovecot and the load generator.
func (b *bench) measure(t *target, r *runResult, body func()) {
	p0, d0, l0 := groupCPU(t.pgid), groupCPU(b.dovecotPgid), selfCPU()
	start := time.Now()
	body()
	r.WallS = time.Since(start).Seconds()
	r.ProxyCPUS = groupCPU(t.pgid) - p0
	r.DovecotCPUS = groupCPU(b.dovecotPgid) - d0
	r.LoadgenCPUS = selfCPU() - l0
}

// parallel calls fn(i) for i in [0, n) from at most workers goroutines and
// waits for all of them.
func parallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// login opens a session to addr and logs in as user.
func (b *bench) login(addr string, conf *tls.Config, user string, bufSize int) (*imapConn, error) {
	c, err := openIMAP(addr, conf, bufSize, b.opTimeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Command("LOGIN " + user + " " + b.password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// runTrace times the phases of one login and flags slow ones.
func (b *bench) runTrace(t *target, front string) runResult {
	r := runResult{Scenario: scTrace, Target: t.name, Front: front, N: 1, Start: time.Now()}
	var errs errCounter
	b.measure(t, &r, func() {
		mark := time.Now()
		step := func(name string) {
			now := time.Now()
			d := now.Sub(mark)
			mark = now
			r.Phases = append(r.Phases, phase{Name: name, Ms: float64(d.Microseconds()) / 1000})
			if d >= stallThreshold {
				r.Stalls = append(r.Stalls, fmt.Sprintf("%s %.1f ms", name, float64(d.Microseconds())/1000))
			}
		}
		nc, err := dialTCP(t.addr(front), b.opTimeout)
		if err != nil {
			errs.add(err)
			return
		}
		step("connect")
		if conf := b.tlsFor(front); conf != nil {
			tc, err := tlsHandshake(nc, conf, b.opTimeout)
			if err != nil {
				nc.Close()
				errs.add(err)
				return
			}
			st := tc.ConnectionState()
			r.TLS = fmt.Sprintf("%s %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID)
			nc = tc
			step("tls")
		}
		c := newIMAPConn(nc, 4096, b.opTimeout)
		defer c.Close()
		if err := c.greeting(); err != nil {
			errs.add(err)
			return
		}
		step("greeting")
		for _, cmd := range []struct{ name, text string }{
			{"login", "LOGIN " + b.user(0) + " " + b.password},
			{"select", "SELECT INBOX"},
			{"logout", "LOGOUT"},
		} {
			if _, err := c.Command(cmd.text); err != nil {
				errs.add(err)
				return
			}
			step(cmd.name)
		}
	})
	errs.into(&r)
	return r
}

// runLogins: loginWorkers workers open logins sessions in total on each
// target: connect, [TLS], greeting, LOGIN, SELECT INBOX, LOGOUT, close.
// The sessions are run in loginChunks chunks and the targets take turns
// chunk by chunk (in rotating order), the finer form of A B A B: a burst
// of another tenant or a frequency change lands on every target alike
// instead of on whichever ran during it. One result per target, its
// figures summed over its chunks. Proxy CPU is read in nanoseconds
// (groupCPUPrecise) around each chunk and a 20 ms pause after it, which
// catches work the chunk leaves behind (measured: 100 ms after a chunk,
// imapedge used 0.15-0.5% more, about its idle rate) but not what a proxy
// burns while idle during the other targets' turns: imapedge's monitor
// thread, kept from parking (cmd/imapedge/sysmon.go), costs about 8 ms
// of CPU per second of idleness, which a reading over the whole loop
// charged to its logins (about +5-7% with four targets).
func (b *bench) runLogins(targets []*target, front string, round int) []runResult {
	n := b.sz.logins
	chunks := max(1, min(b.sz.loginChunks, n))
	rs := make([]runResult, len(targets))
	errs := make([]errCounter, len(targets))
	lat := make([][]time.Duration, len(targets))
	ok := make([][]bool, len(targets))
	for i, t := range targets {
		rs[i] = runResult{Scenario: scLogins, Target: t.name, Front: front, Round: round, N: n, Start: time.Now()}
		lat[i], ok[i] = make([]time.Duration, n), make([]bool, n)
	}
	conf := b.tlsFor(front)
	for k := range chunks {
		from, to := k*n/chunks, (k+1)*n/chunks
		for j := range targets {
			i := (j + k) % len(targets)
			t, addr := targets[i], targets[i].addr(front)
			p0, d0, l0 := groupCPUPrecise(t.pgid), groupCPU(b.dovecotPgid), selfCPU()
			start := time.Now()
			parallel(to-from, b.sz.loginWorkers, func(x int) {
				x += from
				begin := time.Now()
				c, err := b.login(addr, conf, b.user(x), 4096)
				if err != nil {
					errs[i].add(err)
					return
				}
				if _, err := c.Command("SELECT INBOX"); err != nil {
					c.Close()
					errs[i].add(err)
					return
				}
				if err := c.Logout(); err != nil {
					errs[i].add(err)
					return
				}
				lat[i][x] = time.Since(begin)
				ok[i][x] = true
			})
			r := &rs[i]
			r.WallS += time.Since(start).Seconds()
			time.Sleep(20 * time.Millisecond) // the chunk's last closes and leftovers
			r.ProxyCPUS += groupCPUPrecise(t.pgid) - p0
			r.DovecotCPUS += groupCPU(b.dovecotPgid) - d0
			r.LoadgenCPUS += selfCPU() - l0
		}
	}
	for i, t := range targets {
		r := &rs[i]
		var good []float64
		for x := range lat[i] {
			if ok[i][x] {
				good = append(good, float64(lat[i][x].Microseconds())/1000)
			}
		}
		sort.Float64s(good)
		r.P50Ms = percentile(good, 50)
		r.P99Ms = percentile(good, 99)
		if r.WallS > 0 {
			r.SessionsPerS = float64(len(good)) / r.WallS
		}
		if len(good) > 0 && t.pgid > 0 {
			r.ProxyCPUMsPerLogin = r.ProxyCPUS * 1000 / float64(len(good))
		}
		errs[i].into(r)
	}
	return rs
}

// runLatencyInterleaved measures NOOP round trips on one session per
// target, the targets taking turns NOOP by NOOP (in rotating order), so
// that the machine's drift — other tenants, frequency changes — falls on
// every target alike. One result per target; proxy CPU is each target's
// own over the whole loop.
func (b *bench) runLatencyInterleaved(targets []*target, front string, round int) []runResult {
	n := b.sz.noops
	rs := make([]runResult, len(targets))
	errs := make([]errCounter, len(targets))
	conns := make([]*imapConn, len(targets))
	rtt := make([][]float64, len(targets))
	p0 := make([]float64, len(targets))
	for i, t := range targets {
		rs[i] = runResult{Scenario: scLatency, Target: t.name, Front: front, Round: round, N: n, Start: time.Now()}
		c, err := b.login(t.addr(front), b.tlsFor(front), b.user(0), 4096)
		if err != nil {
			errs[i].add(err)
			continue
		}
		conns[i] = c
		rtt[i] = make([]float64, 0, n)
	}
	d0, l0 := groupCPU(b.dovecotPgid), selfCPU()
	for i, t := range targets {
		p0[i] = groupCPU(t.pgid)
	}
	start := time.Now()
	for k := range n {
		for j := range targets {
			i := (j + k) % len(targets)
			c := conns[i]
			if c == nil {
				continue
			}
			t0 := time.Now()
			if _, err := c.Command("NOOP"); err != nil {
				errs[i].add(err)
				c.Close()
				conns[i] = nil
				continue
			}
			rtt[i] = append(rtt[i], float64(time.Since(t0).Nanoseconds())/1000)
		}
	}
	wall := time.Since(start).Seconds()
	d1, l1 := groupCPU(b.dovecotPgid)-d0, selfCPU()-l0
	for i, t := range targets {
		r := &rs[i]
		r.WallS, r.DovecotCPUS, r.LoadgenCPUS = wall, d1, l1
		r.ProxyCPUS = groupCPU(t.pgid) - p0[i]
		if c := conns[i]; c != nil {
			if err := c.Logout(); err != nil {
				errs[i].add(err)
			}
			c.Close()
		}
		sort.Float64s(rtt[i])
		r.P50Us = percentile(rtt[i], 50)
		r.P99Us = percentile(rtt[i], 99)
		errs[i].into(r)
	}
	return rs
}

// runFetch: fetchConns sessions of the fetch user SELECT INBOX and repeat
// FETCH 1:* BODY.PEEK[] for fetchFor (or fetchRounds times each).
func (b *bench) runFetch(t *target, front string, round int) (r runResult) {
	r = runResult{Scenario: scFetch, Target: t.name, Front: front, Round: round, Start: time.Now()}
	var errs errCounter
	defer errs.into(&r)
	conns := make([]*imapConn, 0, b.sz.fetchConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range b.sz.fetchConns {
		c, err := b.login(t.addr(front), b.tlsFor(front), b.fetchUser, 64<<10)
		if err == nil {
			_, err = c.Command("SELECT INBOX")
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			errs.add(err)
			return r
		}
		c.timeout = 2 * time.Minute
		conns = append(conns, c)
	}
	var fetches, bytes atomic.Int64
	durs := make([][]float64, len(conns)) // per session, ms per FETCH
	wantLen := int64(b.sz.fetchMsgs) * int64(b.sz.fetchMsgSize)
	b.measure(t, &r, func() {
		end := time.Now().Add(b.sz.fetchFor)
		parallel(len(conns), len(conns), func(i int) {
			c := conns[i]
			for k := 0; ; k++ {
				if b.sz.fetchFor > 0 && time.Now().After(end) || b.sz.fetchFor == 0 && k >= b.sz.fetchRounds {
					return
				}
				before, start := c.BytesRead(), time.Now()
				resp, err := c.Command("FETCH 1:* BODY.PEEK[]")
				bytes.Add(c.BytesRead() - before)
				durs[i] = append(durs[i], float64(time.Since(start).Microseconds())/1000)
				if err != nil {
					errs.add(err)
					return
				}
				if resp.literals != b.sz.fetchMsgs || resp.literalLen != wantLen {
					errs.add(fmt.Errorf("FETCH returned %d literals of %d bytes in all, want %d of %d",
						resp.literals, resp.literalLen, b.sz.fetchMsgs, wantLen))
					return
				}
				fetches.Add(1)
			}
		})
	})
	for _, c := range conns {
		if err := c.Logout(); err != nil {
			errs.add(err)
		}
	}
	conns = nil
	r.N = int(fetches.Load())
	r.Bytes = bytes.Load()
	var all []float64
	for _, d := range durs {
		all = append(all, d...)
	}
	sort.Float64s(all)
	r.P50Ms = percentile(all, 50)
	r.P99Ms = percentile(all, 99)
	if r.WallS > 0 {
		r.MBPerS = float64(r.Bytes) / 1e6 / r.WallS
	}
	if r.Bytes > 0 && t.pgid > 0 {
		r.ProxyCPUSPerGB = r.ProxyCPUS / (float64(r.Bytes) / 1e9)
	}
	return r
}

// runIdle opens n sessions (LOGIN, SELECT INBOX, IDLE until "+"), reads
// the proxy's RSS once it is stable, then ends IDLE everywhere (DONE ->
// tagged OK) and logs out. A session that fails at any point is lost.
func (b *bench) runIdle(t *target, front string, round, n int, scenario string) runResult {
	r := runResult{Scenario: scenario, Target: t.name, Front: front, Round: round, N: n, Start: time.Now()}
	var errs errCounter
	conns := make([]*imapConn, n)
	tags := make([]string, n)
	addr, conf := t.addr(front), b.tlsFor(front)
	b.measure(t, &r, func() {
		r.RSSBeforeKiB = groupRSS(t.pgid)
		dovecotBefore := groupRSS(b.dovecotPgid)
		parallel(n, b.sz.idleOpen, func(i int) {
			c, err := b.login(addr, conf, b.user(i), 4096)
			if err == nil {
				_, err = c.Command("SELECT INBOX")
				if err == nil {
					tags[i], err = c.Idle()
				}
				if err != nil {
					c.Close()
				}
			}
			if err != nil {
				errs.add(err)
				return
			}
			conns[i] = c
		})
		if t.pgid > 0 {
			r.RSSAfterKiB = waitStableRSS(t.pgid, time.Second, 15*time.Second)
			r.KiBPerSession = float64(r.RSSAfterKiB-r.RSSBeforeKiB) / float64(n)
		}
		r.DovecotKiBPerSesion = float64(groupRSS(b.dovecotPgid)-dovecotBefore) / float64(n)
		parallel(n, b.sz.idleOpen, func(i int) {
			c := conns[i]
			if c == nil {
				return
			}
			err := c.Done(tags[i])
			if err == nil {
				err = c.Logout()
			}
			c.Close()
			if err != nil {
				errs.add(err)
			}
		})
	})
	errs.into(&r)
	r.Lost = r.Errors
	return r
}

// waitStableRSS polls the group's RSS until it has not moved by more than
// a small tolerance for window, or until max has passed, and returns it.
func waitStableRSS(pgid int, window, max time.Duration) int64 {
	start := time.Now()
	ref := groupRSS(pgid)
	since := time.Now()
	for time.Since(start) < max {
		time.Sleep(100 * time.Millisecond)
		v := groupRSS(pgid)
		tol := max64(256, v/200) // 256 KiB or 0.5 %
		if d := v - ref; d > tol || d < -tol {
			ref, since = v, time.Now()
			continue
		}
		if time.Since(since) >= window {
			return v
		}
	}
	return groupRSS(pgid)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

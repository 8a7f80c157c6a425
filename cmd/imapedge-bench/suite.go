package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/imapedge/imapedge/proxy/dovecottest"
)

// dovecotExtra lets Dovecot hold thousands of sessions: one long-lived
// login process for every connection, imap processes of up to 1000
// sessions each. service imap needs service_count = 0 for that: with the
// default of 1 a process serves one session only and client_limit has no
// effect, so process_limit would cap the sessions at 100. vsz_limit: an
// imap process with 1000 sessions outgrows the 256 MiB default.
const dovecotExtra = `default_client_limit = 20000
service imap-login {
  service_count = 0
  client_limit = 10000
  process_min_avail = 1
  vsz_limit = 1G
}
service imap {
  service_count = 0
  client_limit = 1000
  process_limit = 100
  vsz_limit = 1G
}
`

const numUsers = 20

func suiteMain(args []string) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "CI smoke mode: tiny sizes, one round; fails on any error or lost session")
	rounds := fs.Int("rounds", 3, "rounds of every scenario against every target (quick: 1)")
	idle := fs.Int("idle", fullSizes.idle, "idle sessions per idle run (quick: 100)")
	idleFull := fs.Int("idle-full", fullSizes.idleFull, "idle sessions in the final pass (imapedge, haproxy, nginx; plain front; quick: 200)")
	jsonPath := fs.String("json", "", "append one JSON line per run to this file")
	imapedgeBin := fs.String("imapedge", "", "the imapedge binary (go build -o DIR/imapedge ./cmd/imapedge)")
	onlyTargets := fs.String("targets", "", "comma-separated subset of direct,haproxy,nginx,imapedge (default: all)")
	onlyScenarios := fs.String("scenarios", "", "comma-separated subset of trace,logins,latency,fetch,idle,idle-full (default: all)")
	keep := fs.Bool("keep", false, "keep the temporary directories (configs, logs) for inspection")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sz := fullSizes
	if *quick {
		sz = quickSizes
		if !set["rounds"] {
			*rounds = 1
		}
	}
	if set["idle"] || !*quick {
		sz.idle = *idle
	}
	if set["idle-full"] || !*quick {
		sz.idleFull = *idleFull
	}
	if *rounds < 1 || sz.idle < 1 || sz.idleFull < 0 {
		return errors.New("-rounds and -idle must be at least 1, -idle-full at least 0")
	}
	if *imapedgeBin == "" {
		return errors.New("-imapedge PATH is required (go build -o DIR/imapedge ./cmd/imapedge)")
	}
	bin, err := filepath.Abs(*imapedgeBin)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return fmt.Errorf("-imapedge %s: not a file", *imapedgeBin)
	}

	s := &suite{sz: sz, rounds: *rounds, quick: *quick, imapedge: bin, started: time.Now(), keep: *keep,
		cmdline: "imapedge-bench suite " + strings.Join(args, " ")}
	if s.targetSet, err = subset(*onlyTargets, tableTargets); err != nil {
		return fmt.Errorf("-targets: %w", err)
	}
	if s.scenarioSet, err = subset(*onlyScenarios, []string{scTrace, scLogins, scLatency, scFetch, scIdle, scIdleFull}); err != nil {
		return fmt.Errorf("-scenarios: %w", err)
	}
	if *jsonPath != "" {
		f, err := os.OpenFile(*jsonPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		cleanup.push(func() { f.Close() })
		s.jsonOut = f
	}
	onSignal()
	if reaper, err = startReaper(); err != nil {
		progress("warning: no reaper process (%v): if the suite is killed, nginx's worker and the temporary directories stay", err)
	}
	cleanup.push(reaper.finish) // runs last
	if err := s.setUp(); err != nil {
		return err
	}
	s.runAll()
	s.checkAlive()
	s.logProblems()
	cleanup.run() // tear down before the report, so the wall time includes it
	s.report()
	if s.failed() {
		return errors.New("some runs had errors or lost sessions (see above)")
	}
	return nil
}

// suite is one run of the whole benchmark.
type suite struct {
	sz       sizes
	rounds   int
	quick    bool
	imapedge string
	cmdline  string
	started  time.Time
	jsonOut  *os.File
	keep     bool

	targetSet, scenarioSet map[string]bool

	nofile   uint64
	dir      string
	dovecot  *dovecottest.Server
	targets  []*target // table order: direct, haproxy, nginx, imapedge
	b        *bench
	results  []runResult
	problems []string // errors and lost sessions: the suite fails
	logNotes []string // error lines in the logs: reported only
}

func (s *suite) setUp() error {
	var err error
	if s.nofile, err = raiseNoFile(); err != nil {
		return fmt.Errorf("raising the open-file limit: %w", err)
	}
	if need := uint64(2*s.sz.idleFull + 1000); s.nofile < need {
		return fmt.Errorf("open-file limit %d is too low for %d idle sessions through a proxy (need about %d)", s.nofile, s.sz.idleFull, need)
	}
	for _, tool := range []string{"haproxy", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (scripts/bench.sh installs it)", tool)
		}
	}
	s.dir, err = os.MkdirTemp("", "imapedge-bench-")
	if err != nil {
		return err
	}
	dir := s.dir
	reaper.addDir(dir)
	cleanup.push(func() { s.removeDir(dir) })

	step := time.Now()
	d, names, password, pgid, err := launchDovecot(s.removeDir)
	if err != nil {
		return err
	}
	s.dovecot = d
	progress("dovecot: plain %s, tls %s, master pid %d (%.1fs)", d.Addr, d.TLSAddr, pgid, time.Since(step).Seconds())

	step = time.Now()
	if err := seed(d.Addr, names, password, s.sz); err != nil {
		return fmt.Errorf("seeding the mailboxes: %w", err)
	}
	progress("seeded %d mailboxes; %s has %d messages of %d KiB (%.1fs)", numUsers, names[0], s.sz.fetchMsgs, s.sz.fetchMsgSize>>10, time.Since(step).Seconds())

	cert, tlsConf, err := proxyCerts(dir, d.CAFile)
	if err != nil {
		return err
	}

	_, portStr, _ := net.SplitHostPort(d.Addr)
	port, _ := strconv.Atoi(portStr)
	auth, err := startAuthHTTP("127.0.0.1:0", "127.0.0.1", port)
	if err != nil {
		return err
	}
	cleanup.push(auth.Close)

	direct := &target{name: tDirect, addrs: map[string]string{frontPlain: d.Addr, frontTLS: d.TLSAddr}}
	s.targets = []*target{direct}
	for _, start := range []func() (*target, error){
		func() (*target, error) { return startHAProxy(dir, d.Addr, cert, tlsConf) },
		func() (*target, error) { return startNginx(dir, auth.Addr, cert, tlsConf) },
		func() (*target, error) { return startImapedge(dir, s.imapedge, d.Addr, cert, tlsConf) },
	} {
		t, err := start()
		if err != nil {
			return err
		}
		t.start = start
		cleanup.push(t.stop)
		s.targets = append(s.targets, t)
	}
	for _, t := range s.targets {
		progress("%-8s plain %s, tls %s, pgid %d", t.name, t.addr(frontPlain), t.addr(frontTLS), t.pgid)
	}
	s.b = &bench{sz: s.sz, users: names[1:], fetchUser: names[0], password: password,
		tlsConf: tlsConf, dovecotPgid: pgid, opTimeout: 30 * time.Second}
	return nil
}

func (s *suite) removeDir(dir string) {
	if s.keep {
		progress("kept %s", dir)
	} else {
		os.RemoveAll(dir)
	}
	reaper.removeDir(dir)
}

// subset parses a comma-separated list of names from all; empty means all.
func subset(list string, all []string) (map[string]bool, error) {
	set := map[string]bool{}
	if strings.TrimSpace(list) == "" {
		for _, name := range all {
			set[name] = true
		}
		return set, nil
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		ok := false
		for _, a := range all {
			ok = ok || a == name
		}
		if !ok {
			return nil, fmt.Errorf("unknown name %q (want some of %s)", name, strings.Join(all, ","))
		}
		set[name] = true
	}
	return set, nil
}

// dovecotMasterPID reads base_dir/master.pid; the master leads the
// instance's process group.
func dovecotMasterPID(dir string) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "run", "master.pid"))
	if err != nil {
		return 0, fmt.Errorf("dovecot master pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("dovecot master pid: %w", err)
	}
	if p, err := readStat(pid); err != nil || p.pgid != pid {
		return 0, fmt.Errorf("dovecot master %d does not lead its process group", pid)
	}
	return pid, nil
}

// runAll: traces, then rounds × scenarios × fronts × targets in rotating
// order, then the large idle pass.
func (s *suite) runAll() {
	var targets []*target
	for _, t := range s.targets {
		if s.targetSet[t.name] {
			targets = append(targets, t)
		}
	}
	if s.scenarioSet[scTrace] {
		for _, front := range []string{frontPlain, frontTLS} {
			for _, t := range targets {
				s.emit(s.b.runTrace(t, front))
			}
		}
	}
	var scenarios []string
	for _, sc := range []string{scLogins, scLatency, scFetch, scIdle} {
		if s.scenarioSet[sc] {
			scenarios = append(scenarios, sc)
		}
	}
	for round := 1; round <= s.rounds; round++ {
		for si, sc := range scenarios {
			for fi, front := range []string{frontPlain, frontTLS} {
				switch sc {
				case scLatency:
					// All targets at once, NOOP by NOOP.
					for _, r := range s.b.runLatencyInterleaved(rotate(targets, round-1+si+fi), front, round) {
						s.emit(r)
					}
					settle(sc)
					continue
				case scLogins:
					// All targets taking turns, chunk by chunk.
					for _, r := range s.b.runLogins(rotate(targets, round-1+si+fi), front, round) {
						s.emit(r)
					}
					settle(sc)
					continue
				}
				for _, t := range rotate(targets, round-1+si+fi) {
					var r runResult
					switch sc {
					case scFetch:
						r = s.b.runFetch(t, front, round)
					case scIdle:
						r = s.idle(t, front, round, s.sz.idle, scIdle)
					}
					s.emit(r)
					settle(sc)
				}
			}
		}
	}
	if s.sz.idleFull > 0 && s.scenarioSet[scIdleFull] {
		for _, t := range targets {
			if t.name == tDirect {
				continue
			}
			s.emit(s.idle(t, frontPlain, 1, s.sz.idleFull, scIdleFull))
			settle(scIdleFull)
		}
	}
}

// idle runs an idle scenario on a freshly started proxy: C proxies keep
// the memory of earlier sessions in their allocators and pools, so a
// second run would look free; a fresh process measures what sessions cost.
func (s *suite) idle(t *target, front string, round, n int, scenario string) runResult {
	if err := t.restart(); err != nil {
		r := runResult{Scenario: scenario, Target: t.name, Front: front, Round: round, N: n, Start: time.Now(),
			Errors: n, Lost: n, FirstError: "restarting the proxy: " + err.Error()}
		return r
	}
	time.Sleep(200 * time.Millisecond) // let the fresh process settle
	return s.b.runIdle(t, front, round, n, scenario)
}

// settle gives Dovecot a moment to wind down the sessions of the last run.
func settle(scenario string) {
	if scenario == scIdle || scenario == scIdleFull {
		time.Sleep(time.Second)
		return
	}
	time.Sleep(100 * time.Millisecond)
}

// rotate returns ts started at index k.
func rotate(ts []*target, k int) []*target {
	k %= len(ts)
	return append(append([]*target{}, ts[k:]...), ts[:k]...)
}

func (s *suite) emit(r runResult) {
	s.results = append(s.results, r)
	line, err := json.Marshal(r)
	if err != nil {
		panic(err) // only plain types
	}
	fmt.Println(string(line))
	if s.jsonOut != nil {
		s.jsonOut.Write(append(line, '\n'))
	}
	if r.Errors > 0 || r.Lost > 0 {
		s.problems = append(s.problems, fmt.Sprintf("%s %s/%s round %d: %d errors, %d lost of %d; first: %s",
			r.Scenario, r.Target, r.Front, r.Round, r.Errors, r.Lost, r.N, r.FirstError))
	}
}

// checkAlive records a proxy that died during the runs.
func (s *suite) checkAlive() {
	for _, t := range s.targets {
		if t.proc != nil && !t.proc.alive() {
			s.problems = append(s.problems, fmt.Sprintf("%s exited during the runs (%v):\n%s", t.name, t.proc.waitErr, t.proc.output()))
		}
	}
}

// logProblems reports the error lines of Dovecot's and the proxies' logs.
func (s *suite) logProblems() {
	type logFile struct {
		name, path string
		bad        []string
	}
	files := []logFile{
		{"dovecot", filepath.Join(s.dovecot.Dir, "dovecot.log"), []string{"Error:", "Fatal:", "Panic:"}},
		{"haproxy", filepath.Join(s.dir, "haproxy.out"), []string{"[ALERT]", "[WARNING]"}},
		{"nginx", filepath.Join(s.dir, "nginx", "error.log"), []string{"[alert]", "[crit]", "[error]", "[emerg]"}},
		{"imapedge", filepath.Join(s.dir, "imapedge.log"), []string{`"level":"error"`, `"level":"warn"`, `"level":"dpanic"`, `"level":"panic"`, `"level":"fatal"`}},
		{"imapedge stderr", filepath.Join(s.dir, "imapedge.out"), []string{"panic", "fatal", "error"}},
	}
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		var hits []string
		for _, line := range strings.Split(string(data), "\n") {
			for _, b := range f.bad {
				if strings.Contains(line, b) {
					hits = append(hits, line)
					break
				}
			}
		}
		if len(hits) == 0 {
			continue
		}
		msg := fmt.Sprintf("%s log (%s): %d error/warning lines; the first ones:", f.name, filepath.Base(f.path), len(hits))
		for _, h := range hits[:min(5, len(hits))] {
			if len(h) > 400 {
				h = h[:400] + "…"
			}
			msg += "\n    " + h
		}
		s.logNotes = append(s.logNotes, msg)
	}
}

func (s *suite) failed() bool { return len(s.problems) > 0 }

// report prints the header, the login traces, the table and the problems.
func (s *suite) report() {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	mode := "full"
	if s.quick {
		mode = "quick"
	}
	p("")
	p("## imapedge-bench (%s)", mode)
	p("")
	p("- date: %s", s.started.Format(time.RFC3339))
	p("- machine: %d CPUs (%s), %s, open-file limit %d", runtime.NumCPU(), cpuModel(), memTotal(), s.nofile)
	p("- versions: %s; %s; %s; %s", toolVersion("dovecot", "--version"), toolVersion("haproxy", "-v"), toolVersion("nginx", "-v"), runtime.Version())
	p("- imapedge: %s (inspection and audit on)", s.imapedge)
	p("- command: %s", s.cmdline)
	p("- sizes: logins %d per target (c=%d, the targets taking turns in %d chunks); latency %d NOOPs; fetch c=%d × %d msgs of %d KiB, %s; idle %d sessions (opened %d at a time), then %d on the plain front; %d round(s), targets in rotating order, medians over rounds",
		s.sz.logins, s.sz.loginWorkers, s.sz.loginChunks, s.sz.noops, s.sz.fetchConns, s.sz.fetchMsgs, s.sz.fetchMsgSize>>10,
		fetchSpan(s.sz), s.sz.idle, s.sz.idleOpen, s.sz.idleFull, s.rounds)
	p("- TLS: client offers X25519 only, no session resumption; every proxy uses the same ECDSA P-256 certificate, Dovecot its own ECDSA P-256 one")
	p("- threads: HAProxy nbthread 1, nginx worker_processes 1, imapedge GOMAXPROCS=%s (env BENCH_PROXY_GOMAXPROCS; \"default\": one per core)", proxyGOMAXPROCS())
	p("- proxy CPU: the proxy's process group (nginx: master + worker), user+system incl. reaped children; in the logins scenario read in ns (/proc/PID/task/*/schedstat) around each chunk and 20 ms after it, not while idle during the other targets' turns; nginx's auth_http responder runs inside the load generator")
	p("- idle: every idle run starts the proxy afresh (allocators keep earlier sessions' memory), KiB/session = (VmRSS once stable for 1 s with every session in IDLE − VmRSS before) / sessions")
	p("")
	p("### Login phases (one login per target and front; ms)")
	p("")
	for _, r := range s.results {
		if r.Scenario != scTrace {
			continue
		}
		var parts []string
		for _, ph := range r.Phases {
			parts = append(parts, fmt.Sprintf("%s %.2f", ph.Name, ph.Ms))
		}
		line := fmt.Sprintf("- %s/%s: %s", r.Target, r.Front, strings.Join(parts, ", "))
		if r.TLS != "" {
			line += " [" + r.TLS + "]"
		}
		if len(r.Stalls) > 0 {
			line += " — POSSIBLE NAGLE/DELAYED-ACK STALL (>= 35 ms): " + strings.Join(r.Stalls, ", ")
		}
		if r.Errors > 0 {
			line += " — ERROR: " + r.FirstError
		}
		p("%s", line)
	}
	p("")
	p("### Results (medians; ratios are imapedge ÷ other: higher is better for logins/s and MB/s, lower for the rest)")
	p("")
	header, rows := buildTable(s.results, s.sz)
	b.WriteString(renderMarkdown(header, rows))
	p("")
	if header, rows := buildRoundTable(s.results, s.sz); len(rows) > 0 {
		p("### Round by round (imapedge ÷ peer within each round, whose targets ran interleaved; then the median of those ratios)")
		p("")
		b.WriteString(renderMarkdown(header, rows))
		p("")
	}
	if len(s.problems) > 0 {
		p("### Problems")
		p("")
		for _, pr := range s.problems {
			p("- %s", pr)
		}
		p("")
	}
	if len(s.logNotes) > 0 {
		p("### Log notes")
		p("")
		for _, n := range s.logNotes {
			p("- %s", n)
		}
		p("")
	}
	p("total wall time: %s", time.Since(s.started).Round(100*time.Millisecond))
	fmt.Print(b.String())
}

func fetchSpan(sz sizes) string {
	if sz.fetchFor > 0 {
		return fmt.Sprintf("repeated for %v", sz.fetchFor)
	}
	return fmt.Sprintf("%d rounds each", sz.fetchRounds)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "imapedge-bench: "+format+"\n", args...)
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if kib, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return fmt.Sprintf("%.1f GiB RAM", float64(kib)/(1<<20))
			}
		}
	}
	return "unknown RAM"
}

// toolVersion runs "tool flag" and returns the first line of its output.
func toolVersion(tool, flag string) string {
	out, err := exec.Command(tool, flag).CombinedOutput()
	if err != nil && len(out) == 0 {
		return tool + " (unknown version)"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if tool == "dovecot" {
		line = "dovecot " + line
	}
	return line
}

// seed appends the messages directly to Dovecot: the fetch user (the first)
// gets sz.fetchMsgs messages of sz.fetchMsgSize bytes, every other user one
// small message.
func seed(addr string, users []string, password string, sz sizes) error {
	rng := mrand.New(mrand.NewPCG(1, 2)) // the same bodies every time
	for i, u := range users {
		c, err := openIMAP(addr, nil, 4096, 30*time.Second)
		if err != nil {
			return err
		}
		if _, err := c.Command("LOGIN " + u + " " + password); err != nil {
			c.Close()
			return err
		}
		count, size := 1, 2048
		if i == 0 {
			count, size = sz.fetchMsgs, sz.fetchMsgSize
		}
		for k := range count {
			if err := c.Append("INBOX", message(rng, u, k, size)); err != nil {
				c.Close()
				return fmt.Errorf("%s: %w", u, err)
			}
		}
		if err := c.Logout(); err != nil {
			return err
		}
	}
	return nil
}

// message builds a text/plain message of exactly size bytes (size must be
// at least 1 KiB) with CRLF line ends.
func message(rng *mrand.Rand, user string, k, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: imapedge-bench <bench@localhost>\r\n")
	fmt.Fprintf(&b, "To: %s <%s@localhost>\r\n", user, user)
	fmt.Fprintf(&b, "Subject: imapedge-bench message %d\r\n", k+1)
	fmt.Fprintf(&b, "Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n")
	fmt.Fprintf(&b, "Message-ID: <bench-%s-%d@localhost>\r\n", user, k+1)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	msg := []byte(b.String())
	for len(msg) < size {
		n := min(76, size-len(msg)-2)
		if n < 0 {
			break
		}
		for range n {
			msg = append(msg, alphabet[rng.IntN(len(alphabet))])
		}
		msg = append(msg, '\r', '\n')
	}
	for len(msg) < size {
		msg = append(msg, 'x') // size-len was 1
	}
	return msg[:size]
}

// launchDovecot starts the private Dovecot with numUsers users sharing a
// random password, registered for teardown (removeDir removes its
// directory). It returns the user names and the master's process group.
func launchDovecot(removeDir func(string)) (d *dovecottest.Server, names []string, password string, pgid int, err error) {
	var pw [18]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, nil, "", 0, err
	}
	password = hex.EncodeToString(pw[:])
	var users []dovecottest.User
	for i := range numUsers {
		name := fmt.Sprintf("bench%02d", i)
		users = append(users, dovecottest.User{Name: name, Password: password})
		names = append(names, name)
	}
	d, err = dovecottest.Launch(dovecottest.Options{Users: users, ExtraConfig: dovecotExtra})
	if err != nil {
		return nil, nil, "", 0, err
	}
	reaper.addDir(d.Dir)
	pgid, err = dovecotMasterPID(d.Dir)
	if err == nil {
		reaper.addGroup(pgid)
	}
	cleanup.push(func() {
		d.Stop()
		reaper.removeGroup(pgid)
		removeDir(d.Dir)
	})
	if err != nil {
		return nil, nil, "", 0, err
	}
	return d, names, password, pgid, nil
}

// proxyCerts writes the proxies' self-signed certificate into dir and
// returns it with the load generator's TLS configuration, which trusts it
// and Dovecot's CA.
func proxyCerts(dir, dovecotCA string) (certFiles, *tls.Config, error) {
	cert, err := writeSelfSigned(dir)
	if err != nil {
		return cert, nil, err
	}
	roots := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cert.der)
	if err != nil {
		return cert, nil, err
	}
	roots.AddCert(leaf)
	caPEM, err := os.ReadFile(dovecotCA)
	if err != nil {
		return cert, nil, err
	}
	roots.AppendCertsFromPEM(caPEM)
	return cert, &tls.Config{
		RootCAs:    roots,
		ServerName: "localhost",
		MinVersion: tls.VersionTLS12,
		// The same key exchange everywhere: Go would offer X25519MLKEM768,
		// which only imapedge (Go) would pick. No session cache: every
		// connection does a full handshake.
		CurvePreferences: []tls.CurveID{tls.X25519},
	}, nil
}

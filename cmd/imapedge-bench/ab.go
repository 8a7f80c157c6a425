package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// abMain compares two imapedge binaries in front of one Dovecot: plaintext
// or TLS logins (proxy CPU per login) and NOOP round trips, round after
// round, the two binaries taking turns (logins in chunks, the first of each
// round alternating; NOOPs one by one), so the machine's drift falls on
// both alike. The per-round B−A latency differences usually agree within
// 2 µs; one binary against itself came out at 1.035 on CPU per login over
// 6 rounds, so smaller CPU differences need more rounds.
func abMain(args []string) error {
	fs := flag.NewFlagSet("ab", flag.ContinueOnError)
	binA := fs.String("a", "", "the baseline imapedge binary")
	binB := fs.String("b", "", "the imapedge binary to compare with it")
	rounds := fs.Int("rounds", 7, "rounds")
	logins := fs.Int("logins", 3000, "logins per binary and round (0: none)")
	noops := fs.Int("noops", 3000, "NOOP round trips per binary and round (0: none)")
	front := fs.String("front", frontPlain, "plain or tls")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binA == "" || *binB == "" {
		return errors.New("-a OLD and -b NEW are required (go build -o DIR/imapedge ./cmd/imapedge)")
	}
	if *front != frontPlain && *front != frontTLS {
		return fmt.Errorf("-front %q: want plain or tls", *front)
	}
	if *rounds < 1 || *logins < 0 || *noops < 0 || *logins+*noops == 0 {
		return errors.New("-rounds must be at least 1, and -logins or -noops positive")
	}
	var bins [2]string
	for i, b := range []string{*binA, *binB} {
		abs, err := filepath.Abs(b)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() {
			return fmt.Errorf("%s: not a file", b)
		}
		bins[i] = abs
	}
	dir, err := os.MkdirTemp("", "imapedge-ab-")
	if err != nil {
		return err
	}
	removeDir := func(d string) {
		if *keep {
			progress("kept %s", d)
		} else {
			os.RemoveAll(d)
		}
	}
	cleanup.push(func() { removeDir(dir) })
	onSignal()
	d, names, password, _, err := launchDovecot(removeDir)
	if err != nil {
		return err
	}
	cert, tlsConf, err := proxyCerts(dir, d.CAFile)
	if err != nil {
		return err
	}
	var ts [2]*target
	for i, bin := range bins {
		sub := filepath.Join(dir, string(rune('a'+i)))
		if err := os.Mkdir(sub, 0o755); err != nil {
			return err
		}
		t, err := startImapedge(sub, bin, d.Addr, cert, tlsConf)
		if err != nil {
			return err
		}
		cleanup.push(t.stop)
		ts[i] = t
		progress("%c: %s, %s %s", 'A'+i, bin, *front, t.addr(*front))
	}
	b := &bench{sz: sizes{logins: *logins, loginWorkers: fullSizes.loginWorkers, loginChunks: fullSizes.loginChunks, noops: *noops},
		users: names[1:], password: password, tlsConf: tlsConf, opTimeout: 30 * time.Second}

	var cpu, p50 [2][]float64
	var diff []float64
	errs := 0
	for r := 1; r <= *rounds; r++ {
		if *logins > 0 {
			first := (r + 1) % 2
			for k, res := range b.runLogins([]*target{ts[first], ts[1-first]}, *front, r) {
				i := (first + k) % 2
				errs += res.Errors
				cpu[i] = append(cpu[i], res.ProxyCPUMsPerLogin)
			}
		}
		if *noops > 0 {
			res := b.runLatencyInterleaved(ts[:], *front, r)
			for i := range res {
				errs += res[i].Errors
				p50[i] = append(p50[i], res[i].P50Us)
			}
			diff = append(diff, res[1].P50Us-res[0].P50Us)
		}
		progress("round %d of %d done", r, *rounds)
	}
	cleanup.run()
	fmt.Printf("A %s\nB %s\n%s front, %d rounds, medians (every round)\n", bins[0], bins[1], *front, *rounds)
	if *logins > 0 {
		ratio := "–" // no CPU figure (a target without a process group)
		if a := median(cpu[0]); a > 0 {
			ratio = fmt.Sprintf("%.3f", median(cpu[1])/a)
		}
		fmt.Printf("proxy CPU ms/login  A %.3f  B %.3f  B/A %s   A %s  B %s\n",
			median(cpu[0]), median(cpu[1]), ratio, fmtRound(cpu[0], "%.3f"), fmtRound(cpu[1], "%.3f"))
	}
	if *noops > 0 {
		fmt.Printf("NOOP p50 µs         A %.1f  B %.1f  B−A %+.1f   B−A by round %s\n",
			median(p50[0]), median(p50[1]), median(diff), fmtRound(diff, "%+.1f"))
	}
	if errs > 0 {
		return fmt.Errorf("%d errors", errs)
	}
	return nil
}

func fmtRound(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, " ")
}

package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tableTargets is the column order; ratios are imapedge's value divided by
// each of the others.
var tableTargets = []string{tDirect, tHAProxy, tNginx, tImapedge}

// metric is one table row family (one row per front).
type metric struct {
	label     string
	scenario  string
	fronts    []string
	proxyOnly bool // no value for direct
	value     func(runResult) float64
}

func metricsFor(sz sizes) []metric {
	both := []string{frontPlain, frontTLS}
	return []metric{
		{"logins/s", scLogins, both, false, func(r runResult) float64 { return r.SessionsPerS }},
		{"login p50 ms", scLogins, both, false, func(r runResult) float64 { return r.P50Ms }},
		{"login p99 ms", scLogins, both, false, func(r runResult) float64 { return r.P99Ms }},
		{"proxy CPU ms/login", scLogins, both, true, func(r runResult) float64 { return r.ProxyCPUMsPerLogin }},
		{"latency p50 µs", scLatency, both, false, func(r runResult) float64 { return r.P50Us }},
		{"latency p99 µs", scLatency, both, false, func(r runResult) float64 { return r.P99Us }},
		{"fetch MB/s", scFetch, both, false, func(r runResult) float64 { return r.MBPerS }},
		{"proxy CPU s/GB", scFetch, both, true, func(r runResult) float64 { return r.ProxyCPUSPerGB }},
		{fmt.Sprintf("idle KiB/session (%d)", sz.idle), scIdle, both, true, func(r runResult) float64 { return r.KiBPerSession }},
		{fmt.Sprintf("idle KiB/session (%d)", sz.idleFull), scIdleFull, []string{frontPlain}, true, func(r runResult) float64 { return r.KiBPerSession }},
	}
}

// buildTable turns the runs into table rows: per metric and front the
// median over rounds for each target, then imapedge's ratios, then one
// errors/lost row per front.
func buildTable(results []runResult, sz sizes) (header []string, rows [][]string) {
	header = []string{"metric", "front"}
	header = append(header, tableTargets...)
	for _, t := range tableTargets[:len(tableTargets)-1] {
		header = append(header, "imapedge/"+t)
	}
	type key struct{ scenario, target, front string }
	byKey := map[key][]runResult{}
	for _, r := range results {
		k := key{r.Scenario, r.Target, r.Front}
		byKey[k] = append(byKey[k], r)
	}
	for _, m := range metricsFor(sz) {
		for _, front := range m.fronts {
			row := []string{m.label, front}
			vals := map[string]float64{}
			for _, t := range tableTargets {
				runs := byKey[key{m.scenario, t, front}]
				if len(runs) == 0 || m.proxyOnly && t == tDirect {
					row = append(row, "–")
					continue
				}
				var vs []float64
				for _, r := range runs {
					vs = append(vs, m.value(r))
				}
				v := median(vs)
				vals[t] = v
				row = append(row, formatNum(v))
			}
			mine, haveMine := vals[tImapedge]
			for _, t := range tableTargets[:len(tableTargets)-1] {
				other, ok := vals[t]
				if !haveMine || !ok || other == 0 || mine == 0 {
					row = append(row, "–")
					continue
				}
				row = append(row, fmt.Sprintf("%.2f×", mine/other))
			}
			if len(vals) > 0 {
				rows = append(rows, row) // rows of scenarios that did not run are left out
			}
		}
	}
	for _, front := range []string{frontPlain, frontTLS} {
		row := []string{"errors/lost", front}
		for _, t := range tableTargets {
			errs, lost, seen := 0, 0, false
			for _, r := range results {
				if r.Target != t || r.Front != front {
					continue
				}
				seen = true
				if r.Scenario == scIdle || r.Scenario == scIdleFull {
					lost += r.Lost
				} else {
					errs += r.Errors
				}
			}
			if !seen {
				row = append(row, "–")
				continue
			}
			row = append(row, fmt.Sprintf("%d/%d", errs, lost))
		}
		for range tableTargets[:len(tableTargets)-1] {
			row = append(row, "")
		}
		rows = append(rows, row)
	}
	return header, rows
}

// buildRoundTable pairs imapedge with each peer round by round: the
// targets of a round ran interleaved (A B A B), so one round's ratio
// compares them under the same machine conditions, which the ratio of
// medians over rounds (buildTable) does not. One row per metric and front
// with at least two rounds: each round's ratio and their median.
func buildRoundTable(results []runResult, sz sizes) (header []string, rows [][]string) {
	peers := []string{tHAProxy, tNginx}
	header = []string{"metric", "front"}
	for _, t := range peers {
		header = append(header, "imapedge/"+t+" by round", "median")
	}
	type key struct {
		scenario, target, front string
		round                   int
	}
	byKey := map[key]runResult{}
	maxRound := 0
	for _, r := range results {
		byKey[key{r.Scenario, r.Target, r.Front, r.Round}] = r
		maxRound = max(maxRound, r.Round)
	}
	for _, m := range metricsFor(sz) {
		for _, front := range m.fronts {
			row := []string{m.label, front}
			enough := false
			for _, t := range peers {
				var ratios []float64
				var cells []string
				for round := 1; round <= maxRound; round++ {
					mine, ok1 := byKey[key{m.scenario, tImapedge, front, round}]
					other, ok2 := byKey[key{m.scenario, t, front, round}]
					if !ok1 || !ok2 || m.value(other) == 0 || m.value(mine) == 0 {
						continue
					}
					ratio := m.value(mine) / m.value(other)
					ratios = append(ratios, ratio)
					cells = append(cells, fmt.Sprintf("%.2f", ratio))
				}
				if len(ratios) < 2 {
					row = append(row, "–", "–")
					continue
				}
				enough = true
				row = append(row, strings.Join(cells, " "), fmt.Sprintf("%.2f×", median(ratios)))
			}
			if enough {
				rows = append(rows, row)
			}
		}
	}
	return header, rows
}

// formatNum prints about three significant digits.
func formatNum(v float64) string {
	switch a := abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// renderMarkdown renders a markdown table with padded columns; the first
// two columns are left-aligned, the others right-aligned.
func renderMarkdown(header []string, rows [][]string) string {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = utf8.RuneCountInString(h)
	}
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	pad := func(s string, w int, right bool) string {
		n := w - utf8.RuneCountInString(s)
		if n <= 0 {
			return s
		}
		if right {
			return strings.Repeat(" ", n) + s
		}
		return s + strings.Repeat(" ", n)
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + pad(c, width[i], i >= 2) + " |")
		}
		b.WriteString("\n")
	}
	line(header)
	b.WriteString("|")
	for i, w := range width {
		if i >= 2 {
			b.WriteString(" " + strings.Repeat("-", w-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", w) + " |")
		}
	}
	b.WriteString("\n")
	for _, row := range rows {
		line(row)
	}
	return b.String()
}

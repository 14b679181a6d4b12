package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is the outcome of one scenario in one invocation: per system the
// runs of every repetition and their medians.
type Summary struct {
	Scenario  string    `json:"scenario"`
	Doc       string    `json:"doc"`
	Unit      string    `json:"unit"`
	Metric    string    `json:"metric"`
	Reference string    `json:"reference,omitempty"`
	Reps      int       `json:"reps"`
	Quick     bool      `json:"quick,omitempty"`
	When      time.Time `json:"when"`
	Machine   string    `json:"machine"`
	Rows      []*Row    `json:"rows"`
	// RefName is the system the ratios divide by (the best peer resolved).
	RefName string        `json:"reference_system,omitempty"`
	Checks  []CheckResult `json:"targets,omitempty"`

	sc *Scenario
}

// Row is one system's runs and medians.
type Row struct {
	System string `json:"system"`
	Role   Role   `json:"role"`
	Doc    string `json:"doc,omitempty"`
	Runs   []Run  `json:"runs"`
	// Median is the median of every number over the successful runs; nil
	// if none succeeded.
	Median *Result `json:"median,omitempty"`
	// Status is "ok" when every run succeeded, else the first failure and
	// how many runs it affected.
	Status string `json:"status"`
	// Ratio is this row's metric over the reference's; 0 if unknown.
	Ratio float64 `json:"ratio,omitempty"`
}

// CheckResult is one evaluated Target.
type CheckResult struct {
	Desc string `json:"target"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

func newSummary(sc *Scenario, systems []System, reps int, quick bool) *Summary {
	s := &Summary{
		Scenario: sc.Name, Doc: sc.Doc, Unit: sc.Unit, Metric: sc.Metric, Reference: sc.Reference,
		Reps: reps, Quick: quick, When: time.Now().UTC().Truncate(time.Second), sc: sc,
		Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),
	}
	for _, sys := range systems {
		s.Rows = append(s.Rows, &Row{System: sys.Name, Role: sys.Role, Doc: sys.Doc})
	}
	return s
}

func (s *Summary) add(system string, run Run) {
	if r := s.Row(system); r != nil {
		r.Runs = append(r.Runs, run)
	}
}

// Row returns the row of system, or nil.
func (s *Summary) Row(system string) *Row {
	for _, r := range s.Rows {
		if r.System == system {
			return r
		}
	}
	return nil
}

// Value returns system's median of the scenario's metric.
func (s *Summary) Value(system string) (float64, bool) {
	r := s.Row(system)
	if r == nil || r.Median == nil {
		return 0, false
	}
	return r.value(s.Metric)
}

// MetricOf returns system's median of a named metric ("" = throughput).
func (s *Summary) MetricOf(system, metric string) (float64, bool) {
	r := s.Row(system)
	if r == nil || r.Median == nil {
		return 0, false
	}
	return r.value(metric)
}

func (r *Row) value(metric string) (float64, bool) {
	if r.Median == nil {
		return 0, false
	}
	if metric == "" {
		return r.Median.Throughput(), true
	}
	v, ok := r.Median.Metrics[metric]
	return v, ok
}

// Best returns the best successful row of role, by the scenario's metric.
func (s *Summary) Best(role Role) *Row {
	var best *Row
	var bv float64
	for _, r := range s.Rows {
		if r.Role != role {
			continue
		}
		v, ok := r.value(s.Metric)
		if !ok {
			continue
		}
		if best == nil || (s.sc.LowerIsBetter && v < bv) || (!s.sc.LowerIsBetter && v > bv) {
			best, bv = r, v
		}
	}
	return best
}

// Ratio returns a's metric over b's.
func (s *Summary) Ratio(a, b string) (float64, bool) {
	va, ok1 := s.Value(a)
	vb, ok2 := s.Value(b)
	if !ok1 || !ok2 || vb == 0 {
		return 0, false
	}
	return va / vb, true
}

// TargetsMet reports whether every target was met.
func (s *Summary) TargetsMet() bool {
	for _, c := range s.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// finish computes medians, statuses, ratios and targets.
func (s *Summary) finish() {
	for _, r := range s.Rows {
		var ok []*Result
		failures := map[string]int{}
		var firstFail string
		for _, run := range r.Runs {
			if run.Result != nil {
				ok = append(ok, run.Result)
				continue
			}
			if firstFail == "" {
				firstFail = run.Status
			}
			failures[run.Status]++
		}
		switch {
		case len(ok) == len(r.Runs):
			r.Status = "ok"
		case len(ok) == 0 && len(failures) == 1:
			r.Status = firstFail
		default:
			r.Status = fmt.Sprintf("%s (%d of %d runs)", firstFail, len(r.Runs)-len(ok), len(r.Runs))
		}
		if len(ok) > 0 {
			r.Median = medianResult(ok)
		}
	}
	switch s.Reference {
	case "":
	case BestPeer:
		if b := s.Best(Peer); b != nil {
			s.RefName = b.System
		}
	default:
		s.RefName = s.Reference
	}
	if s.RefName != "" {
		for _, r := range s.Rows {
			if v, ok := s.Ratio(r.System, s.RefName); ok {
				r.Ratio = v
			}
		}
	}
	for _, t := range s.sc.Targets {
		got, ok := t.Check(s)
		s.Checks = append(s.Checks, CheckResult{Desc: t.Desc, Got: got, OK: ok})
	}
}

// medianOf returns the median of f over rs.
func medianOf(rs []*Result, f func(*Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// medianResult takes the median of each number separately.
func medianResult(rs []*Result) *Result {
	med := func(f func(*Result) float64) float64 { return medianOf(rs, f) }
	// The median throughput is expressed as Ops over the median run's time.
	byTput := slices.Clone(rs)
	sort.Slice(byTput, func(i, j int) bool { return byTput[i].Throughput() < byTput[j].Throughput() })
	mid := byTput[len(byTput)/2]
	m := &Result{
		Ops:      mid.Ops,
		Elapsed:  time.Duration(float64(mid.Ops) / med(func(r *Result) float64 { return r.Throughput() }) * float64(time.Second)),
		PeakRSS:  int64(med(func(r *Result) float64 { return float64(r.PeakRSS) })),
		CPU:      time.Duration(med(func(r *Result) float64 { return float64(r.CPU) })),
		CPUPerOp: med(func(r *Result) float64 { return r.CPUPerOp }),
		CPUScope: mid.CPUScope,
		Latency: Percentiles{
			Count: mid.Latency.Count,
			P50:   int64(med(func(r *Result) float64 { return float64(r.Latency.P50) })),
			P99:   int64(med(func(r *Result) float64 { return float64(r.Latency.P99) })),
			P999:  int64(med(func(r *Result) float64 { return float64(r.Latency.P999) })),
			Max:   int64(med(func(r *Result) float64 { return float64(r.Latency.Max) })),
		},
	}
	if mid.Ops == 0 {
		m.Elapsed = mid.Elapsed
	}
	keys := map[string]bool{}
	for _, r := range rs {
		for k := range r.Metrics {
			keys[k] = true
		}
	}
	if len(keys) > 0 {
		m.Metrics = map[string]float64{}
		for k := range keys {
			// Over the runs that report k: a run that finished its whole
			// workload has no done%.
			var have []*Result
			for _, r := range rs {
				if _, ok := r.Metrics[k]; ok {
					have = append(have, r)
				}
			}
			m.Metrics[k] = medianOf(have, func(r *Result) float64 { return r.Metrics[k] })
		}
	}
	for _, r := range rs {
		for _, n := range r.Notes {
			if !slices.Contains(m.Notes, n) {
				m.Notes = append(m.Notes, n)
			}
		}
	}
	return m
}

// printSummary prints the table, the ratio line and the targets.
func printSummary(w io.Writer, s *Summary) {
	fmt.Fprintf(w, "\n== %s: %s\n", s.Scenario, s.Doc)
	fmt.Fprintf(w, "   %s; %d repetition(s), interleaved, median shown; each run in its own process\n", s.Machine, s.Reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	ratioHead := ""
	if s.RefName != "" {
		ratioHead = "ratio\t"
	}
	fmt.Fprintf(tw, "scenario\tsystem\trole\t%s/s\tp50\tp99\tp999\tCPU/%s\tpeak RSS\t%s\n", s.Unit, unitOne(s.Unit), ratioHead)
	for _, r := range s.Rows {
		if r.Median == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n", s.Scenario, r.System, r.Role, strings.Repeat("-\t", boolInt(s.RefName != "")))
			continue
		}
		m := r.Median
		ratio := ""
		if s.RefName != "" {
			if r.Ratio > 0 {
				ratio = fmtRatio(r.Ratio) + "\t"
			} else {
				ratio = "-\t"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Scenario, r.System, r.Role,
			fmtCount(m.Throughput()), fmtDur(m.Latency.P50), fmtDur(m.Latency.P99), fmtDur(m.Latency.P999), fmtCPU(m), fmtBytes(m.PeakRSS), ratio)
	}
	tw.Flush()
	// Notes: metrics, remarks and failures, one line per system.
	for _, r := range s.Rows {
		var parts []string
		if r.Median != nil {
			keys := make([]string, 0, len(r.Median.Metrics))
			for k := range r.Median.Metrics {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s=%s", k, fmtMetric(k, r.Median.Metrics[k])))
			}
			parts = append(parts, r.Median.Notes...)
		}
		if r.Status != "ok" {
			parts = append(parts, "FAILED: "+r.Status)
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "   %s: %s\n", r.System, strings.Join(parts, "; "))
		}
	}
	if s.RefName != "" {
		what := "throughput"
		if s.Metric != "" {
			what = s.Metric
		}
		ref := s.RefName
		if s.Reference == BestPeer {
			ref = "best peer (" + s.RefName + ")"
		}
		if v, ok := s.Ratio(s.sc.Subject, s.RefName); ok {
			fmt.Fprintf(w, "ratio: %s / %s = %s (%s)\n", s.sc.Subject, ref, fmtRatio(v), what)
		} else {
			fmt.Fprintf(w, "ratio: %s / %s = n/a (a system failed)\n", s.sc.Subject, ref)
		}
	} else if s.Reference == BestPeer {
		fmt.Fprintf(w, "ratio: n/a (no peer succeeded)\n")
	}
	for _, c := range s.Checks {
		mark := "MET"
		if !c.OK {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "target: %s: %s (%s)\n", c.Desc, mark, c.Got)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeJSON writes every summary to path.
func writeJSON(path string, sums []*Summary) error {
	b, err := json.MarshalIndent(sums, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeSVG renders a horizontal bar chart of the scenario's metric, one bar
// per successful system, with the value and the ratio as labels.
func writeSVG(path string, s *Summary) error {
	type bar struct {
		name, label string
		role        Role
		v           float64
	}
	var bars []bar
	for _, r := range s.Rows {
		v, ok := r.value(s.Metric)
		if !ok {
			bars = append(bars, bar{name: r.System, role: r.Role, label: "failed: " + shorten(r.Status, 60)})
			continue
		}
		label := fmtMetric(s.Metric, v)
		if s.Metric == "" {
			label = fmtCount(v) + " " + s.Unit + "/s"
		}
		if r.Ratio > 0 && s.RefName != "" {
			label += "  (" + fmtRatio(r.Ratio) + ")"
		}
		bars = append(bars, bar{name: r.System, role: r.Role, label: label, v: v})
	}
	maxV := 0.0
	for _, b := range bars {
		maxV = math.Max(maxV, b.v)
	}
	const (
		width   = 900
		left    = 190
		right   = 230
		top     = 58
		barH    = 26
		gap     = 10
		fontFam = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
	)
	height := top + len(bars)*(barH+gap) + 40
	colors := map[Role]string{Subject: "#2b7bba", Variant: "#7fb2dc", Peer: "#9a9a9a", Ceiling: "#e0a040"}
	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n", width, height, width, height)
	fmt.Fprintf(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n")
	title := fmt.Sprintf("%s: %s", s.Scenario, s.Doc)
	fmt.Fprintf(&b, "<text x=\"12\" y=\"22\" font-size=\"14\" font-weight=\"bold\" %s>%s</text>\n", fontFam, html.EscapeString(shorten(title, 110)))
	what := s.Unit + "/s, higher is better"
	if s.Metric != "" {
		what = s.Metric
		if s.sc.LowerIsBetter {
			what += ", lower is better"
		}
	}
	sub := fmt.Sprintf("%s; median of %d; %s", what, s.Reps, s.Machine)
	if s.RefName != "" {
		ref := s.RefName
		if s.Reference == BestPeer {
			ref = "the best peer, " + ref
		}
		sub += "; (x) = ratio to " + ref
	}
	fmt.Fprintf(&b, "<text x=\"12\" y=\"42\" font-size=\"11\" fill=\"#555\" %s>%s</text>\n", fontFam, html.EscapeString(sub))
	for i, br := range bars {
		y := top + i*(barH+gap)
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\" %s>%s</text>\n", left-8, y+barH/2+4, fontFam, html.EscapeString(br.name))
		w := 0.0
		if maxV > 0 {
			w = br.v / maxV * float64(width-left-right)
		}
		fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y, w, barH, colors[br.role])
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" %s>%s</text>\n", float64(left)+w+6, y+barH/2+4, fontFam, html.EscapeString(br.label))
	}
	ly := top + len(bars)*(barH+gap) + 14
	lx := left
	for _, role := range []Role{Subject, Variant, Peer, Ceiling} {
		used := slices.ContainsFunc(bars, func(b bar) bool { return b.role == role })
		if !used {
			continue
		}
		fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, ly, colors[role])
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" %s>%s</text>\n", lx+16, ly+10, fontFam, role)
		lx += 90
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// fmtRatio formats a ratio with two decimals, or three significant digits
// below 0.1.
func fmtRatio(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.2gx", v)
	}
	return fmt.Sprintf("%.2fx", v)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// fmtCount formats a rate with a k/M suffix: 1.23M, 456k, 789.
func fmtCount(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// unitOne is the singular of a Scenario.Unit: "commands" -> "command".
func unitOne(unit string) string { return strings.TrimSuffix(unit, "s") }

// fmtCPU formats the client CPU per op in µs; a "*" marks CPU measured
// over the whole run (setup included) instead of the measured part.
func fmtCPU(r *Result) string {
	if r.Ops == 0 || r.CPU <= 0 {
		return "-"
	}
	s := fmt.Sprintf("%.3gµs", r.CPUPerOp)
	if r.CPUPerOp >= 1000 {
		s = fmt.Sprintf("%.0fµs", r.CPUPerOp)
	}
	if r.CPUScope == "run" {
		s += "*"
	}
	return s
}

// fmtInt formats an integer with thousands separators.
func fmtInt(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && c != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtDur formats nanoseconds with three significant digits.
func fmtDur(ns int64) string {
	if ns <= 0 {
		return "-"
	}
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.3gs", float64(ns)/1e9)
}

// fmtBytes formats a size in binary units.
func fmtBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fmtMetric formats a named metric: sizes for keys that mention bytes,
// rates for "/s", plain numbers otherwise.
func fmtMetric(key string, v float64) string {
	switch {
	case strings.Contains(key, "bytes"):
		if v < 10<<10 {
			return fmt.Sprintf("%.0f B", v)
		}
		return fmtBytes(int64(v))
	case strings.HasSuffix(key, "/s"):
		return fmtCount(v)
	case v == math.Trunc(v):
		return fmtInt(int64(v))
	}
	return fmt.Sprintf("%.3g", v)
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// How a run works
//
// The parent process (what `go run ./bench <scenario>` starts) runs every
// system of the scenario in a child process of its own: the same executable,
// started again with childEnv set. So each system gets a fresh heap, its
// peak RSS (VmHWM) is its own and not the maximum of everything that ran
// before it, goroutines a peer leaks cannot slow the next system, and a
// peer that hangs or panics is reported instead of taking the run down.
// The child sends progress and its Result to the parent as JSON lines on a
// pipe (file descriptor 3), so whatever a peer prints on stdout cannot
// corrupt them. Repetitions are interleaved: rep 0 runs every system, then
// rep 1 every system in an order rotated by one, and so on; the table
// reports medians.

// childEnv carries a childSpec from the parent to a child process.
const childEnv = "EVENTSOURCED_BENCH_CHILD"

type childSpec struct {
	Scenario string   `json:"scenario"`
	System   string   `json:"system"`
	Rep      int      `json:"rep"`
	Args     []string `json:"args"` // the parent's flags, parsed again by the child
}

// message is one JSON line from a child to its parent.
type message struct {
	Done   int64   `json:"done,omitempty"`
	Total  int64   `json:"total,omitempty"`
	Result *Result `json:"result,omitempty"`
	Err    string  `json:"err,omitempty"`
	Skip   string  `json:"skip,omitempty"`
}

// options are the framework's flags.
type options struct {
	reps       int
	timeout    time.Duration
	quick      bool
	jsonPath   string
	svgPath    string
	systems    string
	cpuprofile string
	memprofile string
	verbose    bool
}

func newFlagSet(stderr io.Writer, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.reps, "reps", 0, "repetitions per system (default: the scenario's, usually 3); the median is reported")
	fs.DurationVar(&o.timeout, "timeout", 0, "limit for one system run; a run that takes longer is killed and reported as a hang (default: the scenario's)")
	fs.BoolVar(&o.quick, "quick", false, "tiny workloads, one repetition: checks that everything runs (the smoke test)")
	fs.StringVar(&o.jsonPath, "json", "", "write the results as JSON to `FILE`")
	fs.StringVar(&o.svgPath, "svg", "", "write a bar chart of the scenario's metric per system to `FILE` (with several scenarios: FILE-<scenario>.svg)")
	fs.StringVar(&o.systems, "systems", "", "comma-separated names: run only these systems")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each system's first repetition to `PREFIX`-<scenario>-<system>.prof")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile at the end of each system's first repetition to `PREFIX`-<scenario>-<system>.prof")
	fs.BoolVar(&o.verbose, "v", false, "pass the children's stdout and stderr through")
	for _, hook := range flagHooks {
		hook(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench <scenario>|all [flags]\n\nscenarios:\n")
		for _, n := range scenarioNames() {
			fmt.Fprintf(stderr, "  %-10s %s\n", n, scenarios[n].Doc)
		}
		fmt.Fprintf(stderr, "\nflags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs accepts flags before and after the scenario name.
func parseArgs(args []string, stderr io.Writer) (*options, []string, error) {
	o := new(options)
	fs := newFlagSet(stderr, o)
	var names []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	return o, names, nil
}

// Main is the program: the parent, or a child when childEnv is set.
func Main(args []string, stdout, stderr io.Writer) int {
	if spec := os.Getenv(helperEnv); spec != "" {
		return helperMain(spec, stderr)
	}
	if spec := os.Getenv(childEnv); spec != "" {
		return childMain(spec, stderr)
	}
	o, names, err := parseArgs(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(names) == 0 {
		newFlagSet(stderr, new(options)).Usage()
		return 2
	}
	if len(names) == 1 && names[0] == "all" {
		names = scenarioNames()
	}
	for _, n := range names {
		if scenarios[n] == nil {
			fmt.Fprintf(stderr, "bench: unknown scenario %q (have: %s, all)\n", n, strings.Join(scenarioNames(), ", "))
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var all []*Summary
	failed := false
	for _, n := range names {
		sum, err := runScenario(ctx, scenarios[n], o, args, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %s: %v\n", n, err)
			return 1
		}
		printSummary(stdout, sum)
		all = append(all, sum)
		if !sum.TargetsMet() {
			failed = true
		}
	}
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, all); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	}
	if o.svgPath != "" {
		for _, sum := range all {
			path := o.svgPath
			if len(all) > 1 {
				ext := filepath.Ext(path)
				path = strings.TrimSuffix(path, ext) + "-" + sum.Scenario + ext
			}
			if err := writeSVG(path, sum); err != nil {
				fmt.Fprintf(stderr, "bench: %v\n", err)
				return 1
			}
		}
	}
	_ = failed // Missed targets are reported in the output, not by the exit code.
	return 0
}

// runScenario runs every selected system of sc, interleaved over the
// repetitions, each in a child process, and summarizes.
func runScenario(ctx context.Context, sc *Scenario, o *options, args []string, stderr io.Writer) (*Summary, error) {
	systems := sc.Systems
	if o.systems != "" {
		want := strings.Split(o.systems, ",")
		systems = slices.DeleteFunc(slices.Clone(systems), func(s System) bool { return !slices.Contains(want, s.Name) })
		if len(systems) == 0 {
			return nil, fmt.Errorf("-systems %q selects none of the scenario's systems", o.systems)
		}
	}
	reps := sc.Reps
	if o.reps > 0 {
		reps = o.reps
	} else if o.quick {
		reps = 1
	}
	timeout := sc.Timeout
	if o.timeout > 0 {
		timeout = o.timeout
	}
	sum := newSummary(sc, systems, reps, o.quick)
	for rep := range reps {
		for i := range systems {
			sys := systems[(i+rep)%len(systems)]
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			run := runChild(ctx, sc, sys, rep, reps, timeout, o, args, stderr)
			sum.add(sys.Name, run)
		}
	}
	sum.finish()
	return sum, nil
}

// Run is the outcome of one system run in one repetition.
type Run struct {
	Rep    int     `json:"rep"`
	Result *Result `json:"result,omitempty"`
	// Status is "ok", "skipped: ...", "error: ...", "hang: ..." or "crash: ...".
	Status string `json:"status"`
}

// runChild runs one system once in a child process.
func runChild(ctx context.Context, sc *Scenario, sys System, rep, reps int, timeout time.Duration, o *options, args []string, stderr io.Writer) Run {
	label := fmt.Sprintf("%s [rep %d/%d] %s", sc.Name, rep+1, reps, sys.Name)
	exe, err := os.Executable()
	if err != nil {
		return Run{Rep: rep, Status: "error: " + err.Error()}
	}
	spec, _ := json.Marshal(childSpec{Scenario: sc.Name, System: sys.Name, Rep: rep, Args: args})
	pr, pw, err := os.Pipe()
	if err != nil {
		return Run{Rep: rep, Status: "error: " + err.Error()}
	}
	defer pr.Close()
	// The child's own arguments do not matter: it reads childSpec. A test
	// binary gets -test.run=^$ so that it runs no test if its TestMain does
	// not catch childEnv.
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.ExtraFiles = []*os.File{pw}
	tail := &tailBuffer{max: 8 << 10}
	if o.verbose {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(stderr, tail), io.MultiWriter(stderr, tail)
	} else {
		cmd.Stdout, cmd.Stderr = tail, tail
	}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return Run{Rep: rep, Status: "error: " + err.Error()}
	}
	pw.Close()

	var last message
	var mu sync.Mutex // guards last
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		progress := newProgressPrinter(stderr, label)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m.Result == nil && m.Err == "" && m.Skip == "" {
				progress.update(m.Done, m.Total)
				continue
			}
			mu.Lock()
			last = m
			mu.Unlock()
		}
		progress.clear()
	}()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var werr error
	hung, interrupted := false, false
	select {
	case werr = <-waitErr:
	case <-timer.C:
		hung = true
		_ = cmd.Process.Kill()
		werr = <-waitErr
	case <-ctx.Done():
		interrupted = true
		_ = cmd.Process.Kill()
		werr = <-waitErr
	}
	<-readDone
	mu.Lock()
	m := last
	mu.Unlock()

	run := Run{Rep: rep}
	switch {
	case hung:
		run.Status = fmt.Sprintf("hang: killed after %v; last output: %s", timeout, tail.lastLines(3))
	case interrupted:
		run.Status = "error: interrupted"
	case m.Skip != "":
		run.Status = "skipped: " + m.Skip
	case m.Err != "":
		run.Status = "error: " + m.Err
	case m.Result != nil && werr == nil:
		run.Status = "ok"
		run.Result = m.Result
	default:
		run.Status = fmt.Sprintf("crash: %v: %s", werr, tail.panicLine())
	}
	if run.Result != nil {
		r := run.Result
		fmt.Fprintf(stderr, "%s: %s %s/s, p99 %s, peak RSS %s\n", label, fmtCount(r.Throughput()), sc.Unit, fmtDur(r.Latency.P99), fmtBytes(r.PeakRSS))
	} else {
		fmt.Fprintf(stderr, "%s: %s\n", label, run.Status)
	}
	return run
}

// childMain runs one system once and reports to the parent on fd 3.
func childMain(specJSON string, stderr io.Writer) int {
	out := os.NewFile(3, "bench-results")
	var wmu sync.Mutex // guards enc
	enc := json.NewEncoder(out)
	send := func(m message) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = enc.Encode(m)
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		send(message{Err: "bad child spec: " + err.Error()})
		return 1
	}
	o, _, err := parseArgs(spec.Args, stderr)
	if err != nil {
		send(message{Err: "parse flags: " + err.Error()})
		return 1
	}
	sc := scenarios[spec.Scenario]
	if sc == nil {
		send(message{Err: "unknown scenario " + spec.Scenario})
		return 1
	}
	i := slices.IndexFunc(sc.Systems, func(s System) bool { return s.Name == spec.System })
	if i < 0 {
		send(message{Err: "unknown system " + spec.System})
		return 1
	}
	sys := sc.Systems[i]

	var lastProgress time.Time
	var pmu sync.Mutex // guards lastProgress
	env := &Env{Quick: o.quick, Rep: spec.Rep}
	env.progress = func(done, total int64) {
		pmu.Lock()
		now := time.Now()
		if now.Sub(lastProgress) < time.Second && done < total {
			pmu.Unlock()
			return
		}
		lastProgress = now
		pmu.Unlock()
		send(message{Done: done, Total: total})
	}
	profile := func(prefix string) string {
		return fmt.Sprintf("%s-%s-%s.prof", prefix, sc.Name, strings.ReplaceAll(sys.Name, "/", "_"))
	}
	if o.cpuprofile != "" && spec.Rep == 0 {
		f, err := os.Create(profile(o.cpuprofile))
		if err != nil {
			send(message{Err: err.Error()})
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			send(message{Err: err.Error()})
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	whole := startStopwatch()
	res, err := sys.Run(context.Background(), env)
	_, wholeCPU := whole.stop()
	if reason, ok := isSkip(err); ok {
		send(message{Skip: reason})
		return 0
	}
	if err != nil {
		send(message{Err: err.Error()})
		return 1
	}
	res.PeakRSS = PeakRSS()
	res.CPUScope = "measured"
	if res.CPU <= 0 {
		// The Run measured no CPU of its own: the whole Run's is an
		// upper bound, and the row says that it includes the setup.
		res.CPU, res.CPUScope = wholeCPU, "run"
		res.Notes = append(res.Notes, "CPU of the whole run, setup included")
	}
	if res.Ops > 0 {
		res.CPUPerOp = float64(res.CPU.Nanoseconds()) / 1e3 / float64(res.Ops)
	}
	if res.Latency.Count == 0 {
		res.Latency = env.percentiles()
	}
	if o.memprofile != "" && spec.Rep == 0 {
		if f, err := os.Create(profile(o.memprofile)); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	send(message{Result: &res})
	return 0
}

// progressPrinter prints "label: done/total" at most once a second, on one
// line rewritten in place when stderr is a terminal.
type progressPrinter struct {
	w       io.Writer
	label   string
	tty     bool
	printed bool
}

func newProgressPrinter(w io.Writer, label string) *progressPrinter {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressPrinter{w: w, label: label, tty: tty}
}

func (p *progressPrinter) update(done, total int64) {
	line := fmt.Sprintf("%s: %s/%s", p.label, fmtInt(done), fmtInt(total))
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.printed = true
}

func (p *progressPrinter) clear() {
	if p.tty && p.printed {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Split(strings.TrimSpace(string(t.buf)), "\n")
}

func (t *tailBuffer) lastLines(n int) string {
	l := t.lines()
	l = l[max(0, len(l)-n):]
	return strings.Join(l, " | ")
}

// panicLine returns the panic message and the first frame of user code, or
// the last lines when there is no panic in the output.
func (t *tailBuffer) panicLine() string {
	l := t.lines()
	for i, s := range l {
		if strings.HasPrefix(s, "panic:") || strings.HasPrefix(s, "fatal error:") {
			return strings.Join(l[i:min(i+1, len(l))], " ")
		}
	}
	return strings.Join(l[max(0, len(l)-3):], " | ")
}

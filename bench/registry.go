package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"time"
)

// Scenario is one benchmark: a workload that every one of its Systems runs
// in the same invocation, interleaved over repetitions. Each scenario file
// registers its scenarios in an init function with [Register].
type Scenario struct {
	// Name is the command-line name: go run ./bench <Name>.
	Name string
	// Doc is a one-line description for the usage text and the README.
	Doc string
	// Unit names what Result.Ops counts: "commands", "events", "entities".
	// The table shows Ops/Elapsed as "<Unit>/s".
	Unit string
	// Subject is the system the ratio line is about; default "eventsourced".
	Subject string
	// Reference is what every row's ratio divides by: the name of a system,
	// or [BestPeer] for the best peer of this run (by Metric). Empty: no
	// ratio column.
	Reference string
	// Metric is what ratios compare: "" for throughput, or the key of a
	// Result.Metrics value.
	Metric string
	// LowerIsBetter says a smaller Metric wins (memory, latency); it decides
	// which peer is the best one. Ratios are always row / reference.
	LowerIsBetter bool
	// Targets are the scenario's acceptance checks, printed after the table.
	Targets []Target
	// Reps is the default number of repetitions (-reps overrides it).
	Reps int
	// Timeout bounds one system run (-timeout overrides it); a run that
	// takes longer is killed and reported as a hang.
	Timeout time.Duration
	// Systems are run in this order in the first repetition and rotated by
	// one in each later one, so no system always runs first or last.
	Systems []System
}

// BestPeer as a Scenario.Reference compares every row to the best system of
// role [Peer] in the same run.
const BestPeer = "best peer"

// Role says what a system is in a scenario.
type Role string

const (
	// Subject is this project.
	Subject Role = "subject"
	// Peer is another library doing the same job.
	Peer Role = "peer"
	// Ceiling is a raw bound: the store or substrate alone, without a
	// runtime on top.
	Ceiling Role = "ceiling"
	// Variant is this project with different settings (batching off ...).
	Variant Role = "variant"
)

// System is one contender in a scenario.
type System struct {
	Name string
	Role Role
	// Doc says in a few words how the system is used, for the README.
	Doc string
	// Run executes the workload once and reports what it did. It runs in a
	// fresh child process (see runner.go), so it may leave goroutines and
	// memory behind; Peak RSS is measured around it by the framework. It
	// must stop when ctx ends. Return [Skip] to report that the system
	// cannot run here (no database ...), an error for anything else.
	Run func(ctx context.Context, env *Env) (Result, error)
}

// Result is what one run of a system reports.
type Result struct {
	// Ops is how many units (Scenario.Unit) the run completed in Elapsed.
	Ops int64 `json:"ops"`
	// Elapsed is the measured time; it should exclude setup and teardown.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Metrics holds extra named numbers, such as "bytes/entity" or
	// "events read"; the table prints them in the notes column.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Notes are free-form remarks printed with the row (a peer's bug ...).
	Notes []string `json:"notes,omitempty"`

	// CPU is the process's user+system CPU time (getrusage RUSAGE_SELF)
	// over the measured part, the same span as Elapsed: what the client
	// (this child process) spent, every goroutine of it. Servers run in
	// other processes (PostgreSQL, the NATS server, the latency proxy), so
	// they are not in it. Drive fills it in; a Run with its own loop
	// measures it with [startStopwatch]. If a Run leaves it 0, the
	// framework uses the CPU time of the whole Run (setup included) and
	// CPUScope says so.
	CPU time.Duration `json:"cpu_ns"`
	// CPUScope is "measured" (CPU over the measured part) or "run" (the
	// whole Run, setup included).
	CPUScope string `json:"cpu_scope,omitempty"`
	// CPUPerOp is CPU / Ops in microseconds: "CPU/command" in the table.
	CPUPerOp float64 `json:"cpu_us_per_op"`

	// Filled in by the framework.
	Latency Percentiles `json:"latency"`
	PeakRSS int64       `json:"peak_rss_bytes"`
}

// Throughput returns Ops per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Target is one acceptance check of a scenario, evaluated on the summary of
// a whole invocation (medians over repetitions).
type Target struct {
	// Desc says what is checked, such as "eventsourced >= 3x best peer".
	Desc string
	// Check returns the measured value as text and whether it meets the
	// target. It may return ok false with got "n/a" when a system failed.
	Check func(s *Summary) (got string, ok bool)
}

// cpuTarget is the Target "system's client CPU per op <= maxMicros µs"
// (Result.CPUPerOp, the median over the runs). The value it prints names
// the CPU per op of the systems beside too, those of them that ran: the
// floors that show what the workload's shape costs without a runtime.
func cpuTarget(system string, maxMicros float64, beside ...string) Target {
	return Target{
		Desc: fmt.Sprintf("%s client CPU <= %g µs per op", system, maxMicros),
		Check: func(s *Summary) (string, bool) {
			r := s.Row(system)
			if r == nil || r.Median == nil || r.Median.CPU <= 0 {
				return "n/a", false
			}
			v := fmt.Sprintf("%.3g µs", r.Median.CPUPerOp)
			for _, name := range beside {
				if b := s.Row(name); b != nil && b.Median != nil && b.Median.CPU > 0 {
					v += fmt.Sprintf("; %s %.3g µs", name, b.Median.CPUPerOp)
				}
			}
			return v, r.Median.CPUPerOp <= maxMicros
		},
	}
}

// Skip is returned by System.Run when the system cannot run in this
// environment; the table shows the reason instead of numbers.
func Skip(format string, args ...any) error {
	return &skipError{reason: fmt.Sprintf(format, args...)}
}

type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

func isSkip(err error) (string, bool) {
	var s *skipError
	if errors.As(err, &s) {
		return s.reason, true
	}
	return "", false
}

var (
	scenarios = map[string]*Scenario{}
	// flagHooks add scenario-specific flags to every command line.
	flagHooks []func(fs *flag.FlagSet)
)

// Register adds a scenario. It panics on a duplicate or malformed scenario:
// registration happens in init functions, so that is a programmer error.
func Register(s Scenario) {
	switch {
	case s.Name == "" || s.Name == "all":
		panic(fmt.Sprintf("bench: bad scenario name %q", s.Name))
	case scenarios[s.Name] != nil:
		panic("bench: scenario registered twice: " + s.Name)
	case len(s.Systems) == 0:
		panic("bench: scenario without systems: " + s.Name)
	}
	seen := map[string]bool{}
	for _, sys := range s.Systems {
		if sys.Name == "" || seen[sys.Name] || sys.Run == nil {
			panic(fmt.Sprintf("bench: scenario %s: bad or duplicate system %q", s.Name, sys.Name))
		}
		seen[sys.Name] = true
	}
	if s.Subject == "" {
		s.Subject = "eventsourced"
	}
	if s.Unit == "" {
		s.Unit = "ops"
	}
	if s.Reps == 0 {
		s.Reps = 3
	}
	if s.Timeout == 0 {
		s.Timeout = 3 * time.Minute
	}
	scenarios[s.Name] = &s
}

// RegisterFlags adds flags that a scenario reads (prefix them with the
// scenario name: -pg-dsn, -nats-dir). They are parsed on every command line
// and passed unchanged to the child processes, so a System.Run reads the
// variables they are bound to.
func RegisterFlags(f func(fs *flag.FlagSet)) { flagHooks = append(flagHooks, f) }

// scenarioNames returns the registered names in order.
func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/natscluster"
)

// TestMain lets the test binary serve as the child process of the runner,
// as a helper process (helper.go) and as a nats-server of the cluster
// scenario: the smoke test below starts it again with childEnv set, and a
// child starts it with helperEnv or natscluster's variable set.
func TestMain(m *testing.M) {
	natscluster.RunIfChild() // a nats-server process of the cluster scenario
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec, os.Stderr))
	}
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestSmoke runs every scenario with -quick, every system in a child
// process, and checks that each system produced numbers (or was skipped
// with a reason) and that the JSON and SVG outputs are written.
func TestSmoke(t *testing.T) {
	for _, name := range scenarioNames() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			jsonPath := filepath.Join(dir, "out.json")
			svgPath := filepath.Join(dir, "out.svg")
			var stdout, stderr bytes.Buffer
			code := Main([]string{name, "-quick", "-json", jsonPath, "-svg", svgPath}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
			}
			t.Log("\n" + stdout.String())
			var sums []*Summary
			b, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &sums); err != nil || len(sums) != 1 {
				t.Fatalf("JSON output: %v (%d summaries)", err, len(sums))
			}
			for _, r := range sums[0].Rows {
				switch {
				case r.Status == "ok" && r.Median != nil && r.Median.Ops > 0:
				case strings.HasPrefix(r.Status, "skipped: "):
				case r.Role == Peer && knownPeerFailure(r.Status):
					// A peer's own bug is reported, not ours to fix.
				case stockProtoactorBaseline[r.System] && strings.Contains(r.Status, "data race"):
					// Stock protoactor-go cluster members in one process race
					// (Remote.Start writes grpc's global logger); package
					// cluster works around it, this baseline deliberately
					// does not. Only -race builds see it.
				default:
					t.Errorf("system %s: status %q, median %+v", r.System, r.Status, r.Median)
				}
			}
			svg, err := os.ReadFile(svgPath)
			if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
				t.Errorf("SVG output: %v, %.40q", err, svg)
			}
			if !strings.Contains(stdout.String(), "== "+name) {
				t.Errorf("no table for %s in stdout:\n%s", name, stdout.String())
			}
		})
	}
}

// knownPeerFailure reports whether a peer failed the way the program is
// built to report (a hang or a crash), rather than by a harness bug.
// stockProtoactorBaseline names the reference systems that run stock
// protoactor-go cluster code, not ours.
var stockProtoactorBaseline = map[string]bool{"sequential-cluster-request": true}

func knownPeerFailure(status string) bool {
	return strings.HasPrefix(status, "hang: ") || strings.HasPrefix(status, "crash: ") || strings.HasPrefix(status, "error: ")
}

func TestParseArgs(t *testing.T) {
	o, names, err := parseArgs([]string{"-reps", "2", "memory", "-quick", "hot"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.reps != 2 || !o.quick || strings.Join(names, ",") != "memory,hot" {
		t.Errorf("got reps %d quick %t names %v", o.reps, o.quick, names)
	}
}

func TestMedianResult(t *testing.T) {
	rs := []*Result{
		{Ops: 100, Elapsed: 1e9, Latency: Percentiles{P50: 10}},
		{Ops: 100, Elapsed: 4e9, Latency: Percentiles{P50: 30}},
		{Ops: 100, Elapsed: 2e9, Latency: Percentiles{P50: 20}},
	}
	m := medianResult(rs)
	if got := m.Throughput(); got < 49.9 || got > 50.1 {
		t.Errorf("median throughput %v, want 50", got)
	}
	if m.Latency.P50 != 20 {
		t.Errorf("median p50 %d, want 20", m.Latency.P50)
	}
}

func TestCPUTargetNamesTheSystemsBeside(t *testing.T) {
	row := func(name string, cpu float64) *Row {
		return &Row{System: name, Median: &Result{Ops: 1, CPU: time.Duration(cpu * 1e3), CPUPerOp: cpu}}
	}
	s := &Summary{Rows: []*Row{row("eventsourced", 6.31), row("floor", 2.94), {System: "failed"}}}
	got, ok := cpuTarget("eventsourced", 3.5, "floor", "failed", "absent").Check(s)
	if want := "6.31 µs; floor 2.94 µs"; got != want || ok {
		t.Errorf("Check = %q, %t; want %q, false", got, ok, want)
	}
	got, ok = cpuTarget("floor", 3.5).Check(s)
	if want := "2.94 µs"; got != want || !ok {
		t.Errorf("Check = %q, %t; want %q, true", got, ok, want)
	}
	if got, ok = cpuTarget("failed", 3.5, "floor").Check(s); got != "n/a" || ok {
		t.Errorf("Check of a failed system = %q, %t; want n/a, false", got, ok)
	}
}

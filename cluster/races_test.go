package cluster_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkRaces fails t for every data race the children reported in dir
// (GORACE's log_path) for which allowed, if not nil, is false. The etcd
// test allows one: protoactor-go's etcd provider writes its shutdown flag
// in Shutdown while its keepalive and watch goroutines read it without
// synchronization (see workarounds.go). Only the race detector's reports
// say which race it was, hence the text.
func checkRaces(t *testing.T, dir string, allowed func(report string) bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "race-*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for report := range strings.SplitSeq(string(data), "==================") {
			if !strings.Contains(report, "WARNING: DATA RACE") {
				continue
			}
			if allowed != nil && allowed(report) {
				n++
				t.Logf("allowed data race in a member process (%s):%s", filepath.Base(name), report)
				continue
			}
			t.Errorf("data race in a member process (%s):%s", filepath.Base(name), report)
		}
	}
	if n > 0 {
		t.Logf("%d allowed data race report(s) of upstream code", n)
	}
}

// upstreamRace reports whether both accesses of a race report are in
// protoactor-go's or gRPC's code alone, no frame of this module on either
// stack: the races protoactor-go's remoting has while a member shuts down
// with connections to others still open (see workarounds.go), which the
// member-process tests allow and log. The goroutines' creation stacks may
// name this module's frames (it starts remoting), so they are not looked at.
func upstreamRace(report string) bool {
	const mine = "github.com/eventsourced-go/eventsourced/"
	accesses, upstream := 0, 0 // access stacks, and those with an upstream frame
	in, seen := false, false
	for l := range strings.SplitSeq(report, "\n") {
		switch {
		case strings.HasPrefix(l, "Write at "), strings.HasPrefix(l, "Read at "),
			strings.HasPrefix(l, "Previous write at "), strings.HasPrefix(l, "Previous read at "):
			in, seen = true, false
			accesses++
		case strings.TrimSpace(l) == "":
			in = false
		case in && strings.Contains(l, mine):
			return false
		case in && !seen && (strings.Contains(l, "github.com/asynkron/protoactor-go/") || strings.Contains(l, "google.golang.org/grpc")):
			seen = true
			upstream++
		}
	}
	return accesses == 2 && upstream == 2
}

func TestUpstreamRace(t *testing.T) {
	const upstreamOnly = `WARNING: DATA RACE
Write at 0x00c0001a2b40 by goroutine 88:
  github.com/asynkron/protoactor-go/remote.(*endpointManager).stop()
      /root/go/pkg/mod/github.com/asynkron/protoactor-go@v0.0.0/remote/endpoint_manager.go:120 +0x44
  github.com/asynkron/protoactor-go/remote.(*Remote).Shutdown()
      /root/go/pkg/mod/github.com/asynkron/protoactor-go@v0.0.0/remote/server.go:150 +0x55

Previous read at 0x00c0001a2b40 by goroutine 90:
  github.com/asynkron/protoactor-go/remote.(*endpointManager).removeEndpoint()
      /root/go/pkg/mod/github.com/asynkron/protoactor-go@v0.0.0/remote/endpoint_manager.go:200 +0x66

Goroutine 88 (running) created at:
  github.com/eventsourced-go/eventsourced/cluster.(*Member).Shutdown()
      /work/cluster/lifecycle.go:10 +0x77
`
	if !upstreamRace(upstreamOnly) {
		t.Error("a race between two protoactor-go stacks is not upstream")
	}
	ours := strings.Replace(upstreamOnly, "  github.com/asynkron/protoactor-go/remote.(*endpointManager).removeEndpoint()",
		"  github.com/eventsourced-go/eventsourced/cluster.(*Member).route()", 1)
	if upstreamRace(ours) {
		t.Error("a race with this module's frame on an access stack is upstream")
	}
	runtimeOnly := strings.Replace(upstreamOnly, "  github.com/asynkron/protoactor-go/remote.(*endpointManager).removeEndpoint()",
		"  runtime.mapaccess1()", 1)
	if upstreamRace(runtimeOnly) {
		t.Error("a race with no upstream frame on one access stack is upstream")
	}
}

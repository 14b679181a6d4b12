package logcopy_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/logcopy"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// postgresLog returns a postgreslog.Log in a fresh schema, dropped when t
// ends (see internal/pgtest).
func postgresLog(t testing.TB) *postgreslog.Log {
	t.Helper()
	l, _, _ := pgtest.Log(t, "logcopy_test_")
	return l
}

// chainEvents is the size of the chain test.
const chainEvents = 10_000

// TestChain copies 10,000 events over three types and hundreds of streams
// from memory to NATS, to PostgreSQL and back to memory, each hop
// interrupted in the middle (an append that lands but reports a failure,
// a canceled context, an append that fails) and resumed in a new Copy
// from the file checkpoint. Every log ends up with the same events, in
// the same order per type.
func TestChain(t *testing.T) {
	first := eventlog.NewMemory()
	generate(t, first, chainEvents, 200)
	want := dump(t, first, chainTypes)
	nats, _ := natstest.Log(t)
	pg := postgresLog(t)
	last := eventlog.NewMemory()

	hop := func(name string, src, dst eventlog.Log, interrupt func(dst eventlog.Log, cancel context.CancelFunc) eventlog.Log, wantErr error, opts ...logcopy.Option) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "checkpoint.json")
		cps, err := logcopy.OpenFileCheckpoints(path)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st1, err := logcopy.Copy(ctx, src, interrupt(dst, cancel), chainTypes, append(opts, logcopy.WithCheckpoint(cps))...)
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: interrupted copy: got error %v, want %v", name, err, wantErr)
		}
		// Resume as a new process would: from the file.
		cps, err = logcopy.OpenFileCheckpoints(path)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := logcopy.Copy(context.Background(), src, dst, chainTypes, append(opts, logcopy.WithCheckpoint(cps))...)
		if err != nil {
			t.Fatalf("%s: resumed copy: %v", name, err)
		}
		elapsed := time.Since(start)
		if st1.Appended < 1000 || st2.Present < 1 || st2.Events != chainEvents {
			t.Errorf("%s: interrupted copy %+v, resumed %+v: want over 1,000 appended before the interruption, at least one event found present on resume and %d verified",
				name, st1, st2, chainEvents)
		}
		if got := st1.Appended + st2.Appended + st2.Present; got < chainEvents {
			t.Errorf("%s: %d appended or found present in all, want at least %d", name, got, chainEvents)
		}
		sameDump(t, name, dump(t, dst, chainTypes), want)
		t.Logf("%s: %d events in %v (%.0f events/s, with the interruption, the resume and both verifications); %d appended before the interruption, %d after, %d found present",
			name, chainEvents, elapsed.Round(time.Millisecond), chainEvents/elapsed.Seconds(), st1.Appended, st2.Appended, st2.Present)
	}

	// The 5,000th append lands in NATS, then reports a lost connection.
	// One event per append is what NATS copies fastest (WithBatchLimits).
	hop("memory -> NATS", first, nats, func(dst eventlog.Log, _ context.CancelFunc) eventlog.Log {
		return &interrupted{Log: dst, failAt: 5000, land: true}
	}, eventlog.ErrUnavailable, logcopy.WithBatchLimits(1, logcopy.DefaultBatchBytes))
	// The process is told to stop after the 3,000th append to PostgreSQL.
	hop("NATS -> PostgreSQL", nats, pg, func(dst eventlog.Log, cancel context.CancelFunc) eventlog.Log {
		return &interrupted{Log: dst, failAt: 3000, cancel: cancel}
	}, context.Canceled)
	// The 2,500th append to memory fails.
	hop("PostgreSQL -> memory", pg, last, func(dst eventlog.Log, _ context.CancelFunc) eventlog.Log {
		return &interrupted{Log: dst, failAt: 2500}
	}, errInjected)
	sameDump(t, "last memory log", dump(t, last, chainTypes), dump(t, first, chainTypes))
}

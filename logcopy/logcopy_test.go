package logcopy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/logcopy"
)

// TestCopyKeepsEverything: a copy into an empty log keeps every stream's
// Seqs, names, revisions, data and metadata, and each type's order.
func TestCopyKeepsEverything(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	generate(t, src, 2000, 40)
	for _, tc := range []struct {
		name string
		opts []logcopy.Option
	}{
		{"defaults", nil},
		{"small windows and batches", []logcopy.Option{logcopy.WithCheckpointEvery(7), logcopy.WithBatchLimits(2, 1<<20)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := eventlog.NewMemory()
			var progress []logcopy.Progress
			opts := append(tc.opts, logcopy.WithProgress(func(p logcopy.Progress) { progress = append(progress, p) }))
			st, err := logcopy.Copy(ctx, src, dst, chainTypes, opts...)
			if err != nil {
				t.Fatal(err)
			}
			sameDump(t, "target", dump(t, dst, chainTypes), dump(t, src, chainTypes))
			if st.Appended != 2000 || st.Present != 0 || st.Events != 2000 || len(st.Skipped) != 0 || len(st.Types) != 3 {
				t.Errorf("got stats %+v, want 2000 appended and verified, 3 types", st)
			}
			var streams int64
			for _, ts := range st.Types {
				if !ts.Verified {
					t.Errorf("type %s not verified", ts.EntityType)
				}
				n := int64(0)
				for range src.EntityIDs(ctx, ts.EntityType) {
					n++
				}
				if ts.Streams != n {
					t.Errorf("type %s: got %d streams verified, want %d", ts.EntityType, ts.Streams, n)
				}
				streams += n
			}
			if st.Streams != streams {
				t.Errorf("got %d streams in all, want %d", st.Streams, streams)
			}
			if last := progress[len(progress)-1]; !last.Verified || last.EntityType != "cart.item" {
				t.Errorf("last progress %+v, want cart.item verified", last)
			}
		})
	}
}

// TestConcurrentCopyKeepsStreams: with several appends at once every
// stream is kept exactly; only the interleaving of streams may change.
func TestConcurrentCopyKeepsStreams(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	generate(t, src, 3000, 50)
	dst := eventlog.NewMemory()
	st, err := logcopy.Copy(ctx, src, dst, chainTypes, logcopy.WithConcurrency(8), logcopy.WithCheckpointEvery(500))
	if err != nil {
		t.Fatal(err)
	}
	if st.Appended != 3000 || st.Events != 3000 {
		t.Errorf("got stats %+v, want 3000 appended and verified", st)
	}
	sameDump(t, "target per stream", perStream(dump(t, dst, chainTypes)), perStream(dump(t, src, chainTypes)))
}

// TestBatchLimits: consecutive events of one stream go in one append up to
// the event and byte limits.
func TestBatchLimits(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	evs := make([]eventlog.Event, 7)
	for i := range evs {
		evs[i] = eventlog.Event{Name: "E", Data: []byte("123456789")} // 10 bytes with the name
	}
	if _, err := src.Append(ctx, "t", "a", 0, evs...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opt     logcopy.Option
		ordered bool
		want    []int
	}{
		{"events", logcopy.WithBatchLimits(3, 1<<20), true, []int{3, 3, 1}},
		{"bytes", logcopy.WithBatchLimits(100, 25), true, []int{2, 2, 2, 1}},
		{"one event over the byte limit goes alone", logcopy.WithBatchLimits(100, 5), true, []int{1, 1, 1, 1, 1, 1, 1}},
		{"concurrent", logcopy.WithBatchLimits(4, 1<<20), false, []int{4, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := &counting{Log: eventlog.NewMemory()}
			opts := []logcopy.Option{tc.opt}
			if !tc.ordered {
				opts = append(opts, logcopy.WithConcurrency(4))
			}
			if _, err := logcopy.Copy(ctx, src, dst, []string{"t"}, opts...); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dst.batches, tc.want) {
				t.Errorf("got appends of %v events, want %v", dst.batches, tc.want)
			}
		})
	}
}

// TestTargetNotEmpty: a target stream with events is refused, naming the
// type, id, Seq and the target's last Seq, and nothing is written to it.
func TestTargetNotEmpty(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	appendN(t, src, "order", "o-1", 2, "Placed")
	appendN(t, src, "order", "o-2", 3, "Placed")
	dst := eventlog.NewMemory()
	appendN(t, dst, "order", "o-2", 2, "Placed") // the same events: still refused
	st, err := logcopy.Copy(ctx, src, dst, []string{"order"})
	wantErr(t, err, logcopy.ErrTargetNotEmpty,
		&logcopy.TargetNotEmptyError{EntityType: "order", EntityID: "o-2", Seq: 1, TargetLastSeq: 2},
		"logcopy: target stream order/o-2 is not empty: it has events up to seq 2, so source seq 1 was not copied (WithExistingTargets compares and skips equal events)")
	if last, _ := dst.LastSeq(ctx, "order", "o-2"); last != 2 {
		t.Errorf("the target stream's last seq is %d, want 2: it was written to", last)
	}
	if st.Appended != 2 || st.Present != 0 {
		t.Errorf("got stats %+v, want the 2 events of o-1 appended", st)
	}
	if last, _ := dst.LastSeq(ctx, "order", "o-1"); last != 2 {
		t.Errorf("o-1 has last seq %d in the target, want 2", last)
	}
}

// TestExistingTargets: with WithExistingTargets a target that holds a
// prefix of the source is completed, and one that holds another event
// fails with the first differing Seq, leaving the target as it was.
func TestExistingTargets(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	appendN(t, src, "order", "o-1", 5, "Placed")
	appendN(t, src, "order", "o-2", 1, "Placed")

	t.Run("prefix", func(t *testing.T) {
		dst := eventlog.NewMemory()
		appendN(t, dst, "order", "o-1", 3, "Placed")
		st, err := logcopy.Copy(ctx, src, dst, []string{"order"}, logcopy.WithExistingTargets(), logcopy.WithBatchLimits(2, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if st.Appended != 3 || st.Present != 3 || st.Events != 6 || st.Streams != 2 {
			t.Errorf("got stats %+v, want 3 appended, 3 present, 6 events in 2 streams verified", st)
		}
		sameDump(t, "target per stream", perStream(dump(t, dst, []string{"order"})), perStream(dump(t, src, []string{"order"})))
	})

	for _, tc := range []struct {
		name  string
		event eventlog.Event
		want  *logcopy.DiffersError
		msg   string
	}{
		{"name", eventlog.Event{Name: "Other", Data: []byte("2")},
			&logcopy.DiffersError{EntityType: "order", EntityID: "o-1", Seq: 2, Field: "name", Source: `"Placed"`, Target: `"Other"`},
			`logcopy: order/o-1 seq 2 differs between source and target: name "Placed" in the source, "Other" in the target`},
		{"revision", eventlog.Event{Name: "Placed", Revision: 3, Data: []byte("2")},
			&logcopy.DiffersError{EntityType: "order", EntityID: "o-1", Seq: 2, Field: "revision", Source: "0", Target: "3"},
			`logcopy: order/o-1 seq 2 differs between source and target: revision 0 in the source, 3 in the target`},
		{"data", eventlog.Event{Name: "Placed", Data: []byte("x")},
			&logcopy.DiffersError{EntityType: "order", EntityID: "o-1", Seq: 2, Field: "data", Source: `"2" (1 bytes)`, Target: `"x" (1 bytes)`},
			`logcopy: order/o-1 seq 2 differs between source and target: data "2" (1 bytes) in the source, "x" (1 bytes) in the target`},
		{"metadata", eventlog.Event{Name: "Placed", Data: []byte("2"), Metadata: map[string]string{"k": "v"}},
			&logcopy.DiffersError{EntityType: "order", EntityID: "o-1", Seq: 2, Field: "metadata", Source: `{}`, Target: `{"k": "v"}`},
			`logcopy: order/o-1 seq 2 differs between source and target: metadata {} in the source, {"k": "v"} in the target`},
	} {
		t.Run("differs/"+tc.name, func(t *testing.T) {
			dst := eventlog.NewMemory()
			appendN(t, dst, "order", "o-1", 1, "Placed")
			if _, err := dst.Append(ctx, "order", "o-1", 1, tc.event); err != nil {
				t.Fatal(err)
			}
			before := dump(t, dst, []string{"order"})
			_, err := logcopy.Copy(ctx, src, dst, []string{"order"}, logcopy.WithExistingTargets())
			wantErr(t, err, logcopy.ErrDiffers, tc.want, tc.msg)
			sameDump(t, "target after the refused copy", dump(t, dst, []string{"order"}), before)
		})
	}

	t.Run("target event deleted", func(t *testing.T) {
		dst := eventlog.NewMemory()
		appendN(t, dst, "order", "o-1", 3, "Placed")
		if err := dst.DeleteTo(ctx, "order", "o-1", 2); err != nil {
			t.Fatal(err)
		}
		_, err := logcopy.Copy(ctx, src, dst, []string{"order"}, logcopy.WithExistingTargets())
		wantErr(t, err, logcopy.ErrDiffers,
			&logcopy.DiffersError{EntityType: "order", EntityID: "o-1", Seq: 1, Field: "missing"},
			"logcopy: order/o-1 seq 1: the target's last seq covers it but the target has no readable event there (deleted), so it cannot be compared with the source")
	})

	t.Run("target ahead of the source", func(t *testing.T) {
		dst := eventlog.NewMemory()
		appendN(t, dst, "order", "o-2", 2, "Placed")
		_, err := logcopy.Copy(ctx, src, dst, []string{"order"}, logcopy.WithExistingTargets())
		wantErr(t, err, logcopy.ErrVerify,
			&logcopy.VerifyError{EntityType: "order", Streams: []logcopy.StreamDiff{{EntityID: "o-2", SourceEvents: 1, SourceLastSeq: 1, TargetEvents: 2, TargetLastSeq: 2}}, Total: 1, SourceEvents: 6, TargetEvents: 7},
			"logcopy: verifying order: 1 streams differ (source 6 events, target 7): o-2: source 1 events to seq 1, target 2 events to seq 2")
	})
}

// TestResume: a copy interrupted after an append reached the target but
// before it was checkpointed resumes from the file checkpoint, finds the
// events past the checkpoint, compares and skips them, and copies the
// rest exactly once.
func TestResume(t *testing.T) {
	ctx := context.Background()
	// Five streams of four events, round robin: positions 1 to 20, each
	// event its own append in order.
	src := eventlog.NewMemory()
	for range 4 {
		for s := range 5 {
			appendN(t, src, "t", string(rune('a'+s)), 1, "E")
		}
	}
	path := filepath.Join(t.TempDir(), "copy.checkpoint")
	cps, err := logcopy.OpenFileCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := eventlog.NewMemory()
	// The 7th append (position 7, in the second window of 5) lands and
	// fails.
	broken := &interrupted{Log: dst, failAt: 7, land: true}
	st, err := logcopy.Copy(ctx, src, broken, []string{"t"}, logcopy.WithCheckpoint(cps), logcopy.WithCheckpointEvery(5))
	if !errors.Is(err, eventlog.ErrUnavailable) || !strings.Contains(err.Error(), "logcopy: append t/b seq 2..2 to the target: injected failure") {
		t.Fatalf("got error %v, want the injected failure naming t/b seq 2", err)
	}
	if st.Appended != 6 {
		t.Errorf("got %d appended, want 6", st.Appended)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const wantFile = `{
  "version": 1,
  "types": {
    "t": {
      "copied": 5,
      "pending": 10
    }
  }
}`
	if string(b) != wantFile {
		t.Errorf("checkpoint file:\n%s\nwant\n%s", b, wantFile)
	}

	t.Run("differing event past the checkpoint", func(t *testing.T) {
		// A copy of the target with event 8 (c seq 2) written by someone
		// else: within the pending window, but not the source's.
		other := eventlog.NewMemory()
		for r := range dst.ReadType(ctx, "t", 0) {
			if _, err := other.Append(ctx, "t", r.EntityID, r.Seq-1, eventlog.Event{Name: r.Name, Data: r.Data}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := other.Append(ctx, "t", "c", 1, eventlog.Event{Name: "Forged"}); err != nil {
			t.Fatal(err)
		}
		cps2, err := logcopy.OpenFileCheckpoints(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = logcopy.Copy(ctx, src, other, []string{"t"}, logcopy.WithCheckpoint(cps2), logcopy.WithCheckpointEvery(5))
		wantErr(t, err, logcopy.ErrDiffers,
			&logcopy.DiffersError{EntityType: "t", EntityID: "c", Seq: 2, Field: "name", Source: `"E"`, Target: `"Forged"`},
			`logcopy: t/c seq 2 differs between source and target: name "E" in the source, "Forged" in the target`)
	})

	// A new process: the checkpoint comes from the file.
	cps, err = logcopy.OpenFileCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err = logcopy.Copy(ctx, src, dst, []string{"t"}, logcopy.WithCheckpoint(cps), logcopy.WithCheckpointEvery(5))
	if err != nil {
		t.Fatal(err)
	}
	if st.Appended != 13 || st.Present != 2 || st.Events != 20 || st.Streams != 5 || st.Types[0].Position != 20 {
		t.Errorf("got stats %+v, want 13 appended, 2 present (positions 6 and 7), 20 events in 5 streams verified, position 20", st)
	}
	sameDump(t, "target", dump(t, dst, []string{"t"}), dump(t, src, []string{"t"}))
	if cp, _ := cps.Load(ctx, "t"); cp != (logcopy.Checkpoint{Copied: 20, Pending: 20}) {
		t.Errorf("final checkpoint %+v, want 20/20", cp)
	}

	// Once complete, the copy is a no-op that verifies; new source events
	// are copied by the next run.
	appendN(t, src, "t", "a", 2, "E")
	st, err = logcopy.Copy(ctx, src, dst, []string{"t"}, logcopy.WithCheckpoint(cps))
	if err != nil {
		t.Fatal(err)
	}
	if st.Appended != 2 || st.Present != 0 || st.Events != 22 {
		t.Errorf("got stats %+v, want 2 appended and 22 verified", st)
	}

	t.Run("events past the pending window are a non-empty target", func(t *testing.T) {
		src := eventlog.NewMemory()
		appendN(t, src, "t", "a", 10, "E")
		dst := eventlog.NewMemory()
		cps := logcopy.NewMemoryCheckpoints()
		if err := cps.Save(ctx, "t", logcopy.Checkpoint{Copied: 3, Pending: 5}); err != nil {
			t.Fatal(err)
		}
		appendN(t, dst, "t", "a", 6, "E")
		_, err := logcopy.Copy(ctx, src, dst, []string{"t"}, logcopy.WithCheckpoint(cps))
		wantErr(t, err, logcopy.ErrTargetNotEmpty,
			&logcopy.TargetNotEmptyError{EntityType: "t", EntityID: "a", Seq: 6, TargetLastSeq: 6},
			"logcopy: target stream t/a is not empty: it has events up to seq 6, so source seq 6 was not copied (WithExistingTargets compares and skips equal events)")
	})
}

// TestInterruptions: a copy stopped by a canceled context or a failed
// append at any point, concurrent or not, resumes to an exact copy.
func TestInterruptions(t *testing.T) {
	src := eventlog.NewMemory()
	generate(t, src, 1500, 30)
	want := dump(t, src, chainTypes)
	for _, tc := range []struct {
		name        string
		concurrency int
		land        bool
		cancel      bool
	}{
		{"failed append", 1, false, false},
		{"landed append", 1, true, false},
		{"cancel", 1, false, true},
		{"concurrent landed append", 6, true, false},
		{"concurrent cancel", 6, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := eventlog.NewMemory()
			cps := logcopy.NewMemoryCheckpoints()
			opts := []logcopy.Option{logcopy.WithCheckpoint(cps), logcopy.WithConcurrency(tc.concurrency), logcopy.WithCheckpointEvery(100)}
			for _, failAt := range []int64{1, 77, 300} {
				ctx, cancel := context.WithCancel(context.Background())
				broken := &interrupted{Log: dst, failAt: failAt, land: tc.land}
				if tc.cancel {
					broken.cancel = cancel
				}
				_, err := logcopy.Copy(ctx, src, broken, chainTypes, opts...)
				cancel()
				if tc.cancel && !errors.Is(err, context.Canceled) || !tc.cancel && !errors.Is(err, errInjected) {
					t.Fatalf("interrupted at append %d: got error %v", failAt, err)
				}
			}
			st, err := logcopy.Copy(context.Background(), src, dst, chainTypes, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if st.Events != 1500 {
				t.Errorf("verified %d events, want 1500", st.Events)
			}
			got := dump(t, dst, chainTypes)
			if tc.concurrency > 1 {
				sameDump(t, "target per stream", perStream(got), perStream(want))
			} else {
				sameDump(t, "target", got, want)
			}
		})
	}
}

// TestTruncatedSource: a source stream whose first events were deleted
// cannot keep its Seqs on an empty target: refused by default, skipped and
// reported with WithSkipTruncated.
func TestTruncatedSource(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	appendN(t, src, "t", "a", 2, "E")
	appendN(t, src, "t", "b", 5, "E")
	appendN(t, src, "t", "c", 1, "E")
	if err := src.DeleteTo(ctx, "t", "b", 2); err != nil {
		t.Fatal(err)
	}
	_, err := logcopy.Copy(ctx, src, eventlog.NewMemory(), []string{"t"})
	wantErr(t, err, logcopy.ErrGap,
		&logcopy.GapError{EntityType: "t", EntityID: "b", Seq: 3, TargetLastSeq: 0},
		"logcopy: cannot copy t/b seq 3: the target's last seq is 0, not 2 (the source's earlier events were deleted, or the target lost them; WithSkipTruncated skips streams whose target is empty)")

	for _, concurrency := range []int{1, 3} {
		dst := eventlog.NewMemory()
		st, err := logcopy.Copy(ctx, src, dst, []string{"t"}, logcopy.WithSkipTruncated(), logcopy.WithConcurrency(concurrency), logcopy.WithBatchLimits(1, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		want := []logcopy.Stream{{EntityType: "t", EntityID: "b", FirstSeq: 3, LastSeq: 5}}
		if !reflect.DeepEqual(st.Skipped, want) || st.Appended != 3 || st.Events != 3 || st.Streams != 2 {
			t.Errorf("concurrency %d: got stats %+v, want b skipped, 3 events of 2 streams copied", concurrency, st)
		}
		if last, _ := dst.LastSeq(ctx, "t", "b"); last != 0 {
			t.Errorf("b has last seq %d in the target, want 0", last)
		}
	}

	// A target that has the stream's beginning takes its tail.
	dst := eventlog.NewMemory()
	appendN(t, dst, "t", "b", 2, "E")
	st, err := logcopy.Copy(ctx, src, dst, []string{"t"}, logcopy.WithExistingTargets())
	if err != nil {
		t.Fatal(err)
	}
	if st.Appended != 6 || st.Events != 6 || len(st.Skipped) != 0 {
		t.Errorf("got stats %+v, want 6 appended and verified", st)
	}
}

// TestVerifyFails: a target that loses events is caught by the
// verification, with the differing streams listed.
func TestVerifyFails(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	for i := range 12 {
		appendN(t, src, "t", string(rune('a'+i)), 2, "E")
	}
	dst := &filtered{Log: eventlog.NewMemory(), drop: func(r eventlog.Record) bool { return r.Seq == 2 }}
	_, err := logcopy.Copy(ctx, src, dst, []string{"t"})
	var diffs []logcopy.StreamDiff
	var msg strings.Builder
	msg.WriteString("logcopy: verifying t: 12 streams differ (source 24 events, target 12)")
	for i := range 10 {
		diffs = append(diffs, logcopy.StreamDiff{EntityID: string(rune('a' + i)), SourceEvents: 2, SourceLastSeq: 2, TargetEvents: 1, TargetLastSeq: 1})
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		msg.WriteString(sep + string(rune('a'+i)) + ": source 2 events to seq 2, target 1 events to seq 1")
	}
	msg.WriteString("; and 2 more")
	wantErr(t, err, logcopy.ErrVerify, &logcopy.VerifyError{EntityType: "t", Streams: diffs, Total: 12, SourceEvents: 24, TargetEvents: 12}, msg.String())
}

// TestTargetRefusesEvent: an event the target cannot store fails the copy
// with the target's error and the stream and Seqs concerned.
func TestTargetRefusesEvent(t *testing.T) {
	ctx := context.Background()
	src := eventlog.NewMemory()
	appendN(t, src, "t", "a", 3, "E")
	if _, err := src.Append(ctx, "t", "a", 3, eventlog.Event{Name: "Big", Data: make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	dst := &sizeLimited{Log: eventlog.NewMemory(), max: 50}
	st, err := logcopy.Copy(ctx, src, dst, []string{"t"}, logcopy.WithBatchLimits(2, 1<<20))
	const want = "logcopy: append t/a seq 3..4 to the target: eventlog: invalid argument: t/a: event of 100 bytes, more than 50"
	if !errors.Is(err, eventlog.ErrInvalid) || err.Error() != want {
		t.Fatalf("got error %v, want %q", err, want)
	}
	if st.Appended != 2 {
		t.Errorf("got %d appended, want 2", st.Appended)
	}
}

// sizeLimited is a target that stores no event larger than max bytes.
type sizeLimited struct {
	eventlog.Log
	max int
}

func (l *sizeLimited) Append(ctx context.Context, typ, id string, expected uint64, events ...eventlog.Event) (uint64, error) {
	for _, ev := range events {
		if len(ev.Data) > l.max {
			return 0, fmt.Errorf("%w: %s/%s: event of %d bytes, more than %d", eventlog.ErrInvalid, typ, id, len(ev.Data), l.max)
		}
	}
	return l.Log.Append(ctx, typ, id, expected, events...)
}

// TestBadInput: bad arguments and options are refused before any I/O,
// with a message naming them.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	log := &counting{Log: eventlog.NewMemory()}
	long := strings.Repeat("x", eventlog.MaxTypeLen+1)
	for _, tc := range []struct {
		name     string
		src, dst eventlog.Log
		types    []string
		opts     []logcopy.Option
		want     string
	}{
		{"nil source", nil, log, []string{"t"}, nil, "logcopy: invalid argument: Copy: nil source or target log"},
		{"nil target", log, nil, []string{"t"}, nil, "logcopy: invalid argument: Copy: nil source or target log"},
		{"no types", log, log, nil, nil, "logcopy: invalid argument: Copy: no entity types (a log cannot list its types; name them)"},
		{"empty type", log, log, []string{"t", ""}, nil, "logcopy: invalid argument: Copy: eventlog: invalid argument: empty entity type"},
		{"NUL in type", log, log, []string{"a\x00b"}, nil, `logcopy: invalid argument: Copy: eventlog: invalid argument: entity type "a\x00b" holds a NUL byte`},
		{"long type", log, log, []string{long}, nil, "logcopy: invalid argument: Copy: eventlog: invalid argument: entity type " + eventlog.FormatID(long) + " is 256 bytes, over the limit of 255"},
		{"repeated type", log, log, []string{"t", "u", "t"}, nil, "logcopy: invalid argument: Copy: type t named twice"},
		{"nil option", log, log, []string{"t"}, []logcopy.Option{nil}, "logcopy: invalid argument: nil Option"},
		{"nil checkpoint", log, log, []string{"t"}, []logcopy.Option{logcopy.WithCheckpoint(nil)}, "logcopy: invalid argument: WithCheckpoint(nil)"},
		{"batch events", log, log, []string{"t"}, []logcopy.Option{logcopy.WithBatchLimits(0, 10)}, "logcopy: invalid argument: WithBatchLimits(0, 10): both must be >= 1"},
		{"batch bytes", log, log, []string{"t"}, []logcopy.Option{logcopy.WithBatchLimits(10, -1)}, "logcopy: invalid argument: WithBatchLimits(10, -1): both must be >= 1"},
		{"checkpoint every", log, log, []string{"t"}, []logcopy.Option{logcopy.WithCheckpointEvery(0)}, "logcopy: invalid argument: WithCheckpointEvery(0): must be >= 1"},
		{"concurrency", log, log, []string{"t"}, []logcopy.Option{logcopy.WithConcurrency(0)}, "logcopy: invalid argument: WithConcurrency(0): must be >= 1"},
		{"nil progress", log, log, []string{"t"}, []logcopy.Option{logcopy.WithProgress(nil)}, "logcopy: invalid argument: WithProgress(nil)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := logcopy.Copy(ctx, tc.src, tc.dst, tc.types, tc.opts...)
			if !errors.Is(err, logcopy.ErrInvalid) || err.Error() != tc.want {
				t.Errorf("got error %v, want %q matching ErrInvalid", err, tc.want)
			}
		})
	}
	if log.calls != 0 {
		t.Errorf("the log got %d calls, want none", log.calls)
	}
}

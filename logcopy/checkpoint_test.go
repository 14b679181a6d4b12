package logcopy_test

import (
	"context"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/logcopy"
)

// TestFileCheckpoints: checkpoints survive a reopen, the file is replaced
// whole with no temporary file left behind, and a damaged file is an
// error rather than a fresh start.
func TestFileCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	f, err := logcopy.OpenFileCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := f.Load(ctx, "a"); err != nil || cp != (logcopy.Checkpoint{}) {
		t.Fatalf("Load from a new file: %+v, %v; want the zero checkpoint", cp, err)
	}
	for i, cp := range []logcopy.Checkpoint{{Copied: 1, Pending: 9}, {Copied: 9, Pending: 20}} {
		if err := f.Save(ctx, "a", cp); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	if err := f.Save(ctx, "b", logcopy.Checkpoint{Copied: 4, Pending: 4}); err != nil {
		t.Fatal(err)
	}
	g, err := logcopy.OpenFileCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]logcopy.Checkpoint{"a": {Copied: 9, Pending: 20}, "b": {Copied: 4, Pending: 4}, "c": {}} {
		if got, err := g.Load(ctx, typ); err != nil || got != want {
			t.Errorf("reopened %s: got %+v, %v; want %+v", typ, got, err, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files, want only the checkpoint file", len(entries))
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.Save(canceled, "a", logcopy.Checkpoint{Copied: 30}); !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a canceled context: got %v", err)
	}
	if err := logcopy.NewMemoryCheckpoints().Save(ctx, "a", logcopy.Checkpoint{Copied: 30}); err != nil {
		t.Error(err)
	}

	for _, tc := range []struct{ name, content, want string }{
		{"not JSON", "{", "logcopy: checkpoint: parse " + filepath.Join(dir, "bad") + ": unexpected end of JSON input"},
		{"other version", `{"version": 2, "types": {}}`, "logcopy: checkpoint: " + filepath.Join(dir, "bad") + " has format version 2, this package reads 1"},
		{"bad type", `{"version": 1, "types": {"": {"copied": 1}}}`, "logcopy: checkpoint: " + filepath.Join(dir, "bad") + ": eventlog: invalid argument: empty entity type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, "bad")
			if err := os.WriteFile(bad, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := logcopy.OpenFileCheckpoints(bad)
			if !errors.Is(err, logcopy.ErrCheckpoint) || err.Error() != tc.want {
				t.Errorf("got %v, want %q matching ErrCheckpoint", err, tc.want)
			}
		})
	}
	if _, err := logcopy.OpenFileCheckpoints(""); !errors.Is(err, logcopy.ErrInvalid) {
		t.Errorf("empty path: got %v, want ErrInvalid", err)
	}

	// A checkpoint that cannot be saved stops the copy before it appends
	// anything.
	src := eventlog.NewMemory()
	appendN(t, src, "a", "x", 1, "E")
	dst := eventlog.NewMemory()
	_, err = logcopy.Copy(ctx, src, dst, []string{"a"}, logcopy.WithCheckpoint(failingSave{logcopy.NewMemoryCheckpoints()}))
	if !errors.Is(err, logcopy.ErrCheckpoint) || err.Error() != "logcopy: checkpoint: save a at position 0: disk full" {
		t.Errorf("got %v, want a failed save of a at position 0", err)
	}
	if last, _ := dst.LastSeq(ctx, "a", "x"); last != 0 {
		t.Errorf("the target got events: last seq %d", last)
	}
}

// failingSave is a checkpoint store whose Save fails.
type failingSave struct{ logcopy.CheckpointStore }

func (failingSave) Save(context.Context, string, logcopy.Checkpoint) error {
	return errors.New("disk full")
}

// disordered is a source whose ReadType yields its records in reverse.
type disordered struct{ eventlog.Log }

func (l disordered) ReadType(ctx context.Context, typ string, after uint64) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		var recs []eventlog.Record
		for r, err := range l.Log.ReadType(ctx, typ, after) {
			if err != nil {
				yield(r, err)
				return
			}
			recs = append([]eventlog.Record{r}, recs...)
		}
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// TestSourceOutOfOrder: a source that breaks Position order is refused,
// since a checkpoint would make a resumed copy skip events.
func TestSourceOutOfOrder(t *testing.T) {
	src := eventlog.NewMemory()
	appendN(t, src, "a", "x", 2, "E")
	_, err := logcopy.Copy(context.Background(), disordered{src}, eventlog.NewMemory(), []string{"a"})
	const want = "logcopy: the source's ReadType(a, 0) yielded a/x seq 1 at position 1 after position 2: not a record of the type in Position order"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

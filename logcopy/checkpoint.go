package logcopy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Checkpoint is how far the copy of one entity type has come, in source
// Positions.
type Checkpoint struct {
	// Copied is the Position up to which every source event of the type is
	// in the target.
	Copied uint64 `json:"copied"`
	// Pending is the end of the window being copied when the checkpoint
	// was saved: the events with Positions in (Copied, Pending] may or may
	// not be in the target. A resumed copy compares those it finds there
	// with the source and skips them; elsewhere, a target event at a Seq
	// the copy needs is a [*TargetNotEmptyError]. Pending <= Copied means
	// nothing is pending.
	Pending uint64 `json:"pending"`
}

// CheckpointStore keeps a copy's [Checkpoint] per entity type. Copy loads
// a type's checkpoint once before copying it and saves one before
// appending each window of events, so a copy that stops at any point can
// resume without losing or duplicating events.
//
// Implementations must be safe for concurrent use, and Save must be
// durable when it returns: a checkpoint that is lost sends the copy back
// to a Position whose events it has written (harmless, they are compared
// and skipped only within Pending), or, if Pending was lost, makes it
// refuse them as a non-empty target.
type CheckpointStore interface {
	// Load returns the type's checkpoint, the zero Checkpoint if it has
	// none.
	Load(ctx context.Context, typ string) (Checkpoint, error)
	// Save stores the type's checkpoint.
	Save(ctx context.Context, typ string, cp Checkpoint) error
}

// MemoryCheckpoints is a [CheckpointStore] in memory, for copies that need
// not survive the process, and for tests.
type MemoryCheckpoints struct {
	mu  sync.Mutex // guards cps
	cps map[string]Checkpoint
}

var _ CheckpointStore = (*MemoryCheckpoints)(nil)

// NewMemoryCheckpoints returns an empty [MemoryCheckpoints].
func NewMemoryCheckpoints() *MemoryCheckpoints {
	return &MemoryCheckpoints{cps: map[string]Checkpoint{}}
}

// Load implements [CheckpointStore].
func (m *MemoryCheckpoints) Load(ctx context.Context, typ string) (Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cps[typ], nil
}

// Save implements [CheckpointStore].
func (m *MemoryCheckpoints) Save(ctx context.Context, typ string, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cps[typ] = cp
	return nil
}

// FileCheckpoints is a [CheckpointStore] in one JSON file. Each Save
// writes the whole file to a temporary file in the same directory, syncs
// it, renames it over the old one and syncs the directory, so after a
// crash the file holds either the previous checkpoints or the new ones,
// never a torn mix.
type FileCheckpoints struct {
	path string

	mu  sync.Mutex // guards cps and the file
	cps map[string]Checkpoint
}

var _ CheckpointStore = (*FileCheckpoints)(nil)

// fileFormat is the file's content. Version lets a later format refuse to
// misread this one.
type fileFormat struct {
	Version int                   `json:"version"`
	Types   map[string]Checkpoint `json:"types"`
}

const fileVersion = 1

// OpenFileCheckpoints opens the checkpoint file at path, which need not
// exist yet (its directory must). A file that exists but cannot be parsed
// is an error matching [ErrCheckpoint]: starting over on a damaged file
// would make the copy refuse what it had written.
func OpenFileCheckpoints(path string) (*FileCheckpoints, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: OpenFileCheckpoints: empty path", ErrInvalid)
	}
	f := &FileCheckpoints{path: path, cps: map[string]Checkpoint{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("%w: read %s: %w", ErrCheckpoint, path, err)
	}
	var ff fileFormat
	if err := json.Unmarshal(b, &ff); err != nil {
		return nil, fmt.Errorf("%w: parse %s: %w", ErrCheckpoint, path, err)
	}
	if ff.Version != fileVersion {
		return nil, fmt.Errorf("%w: %s has format version %d, this package reads %d", ErrCheckpoint, path, ff.Version, fileVersion)
	}
	for typ := range ff.Types {
		if err := eventlog.ValidateType(typ); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCheckpoint, path, err)
		}
	}
	if ff.Types != nil {
		f.cps = ff.Types
	}
	return f, nil
}

// Path returns the file's path.
func (f *FileCheckpoints) Path() string { return f.path }

// Load implements [CheckpointStore].
func (f *FileCheckpoints) Load(ctx context.Context, typ string) (Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cps[typ], nil
}

// Save implements [CheckpointStore]. It keeps the checkpoint in memory
// only once the file holds it, so a failed Save changes nothing.
func (f *FileCheckpoints) Save(ctx context.Context, typ string, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next := maps.Clone(f.cps)
	next[typ] = cp
	b, err := json.MarshalIndent(fileFormat{Version: fileVersion, Types: next}, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrCheckpoint, err)
	}
	if err := writeFileAtomic(f.path, b); err != nil {
		return fmt.Errorf("%w: save %s: %w", ErrCheckpoint, f.path, err)
	}
	f.cps = next
	return nil
}

// writeFileAtomic replaces path with b: temporary file, sync, rename, sync
// of the directory, so that the rename itself survives a crash.
func writeFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

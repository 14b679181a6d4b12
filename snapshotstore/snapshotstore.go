package snapshotstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/streamkey"
)

// Snapshot is an entity's encoded state as of an event Seq.
type Snapshot struct {
	// EntityType and EntityID name the entity.
	EntityType string
	EntityID   string
	// Seq is the Seq of the last event the state includes.
	Seq uint64
	// Revision is the schema revision of Data.
	Revision uint32
	// Data is the encoded state.
	Data []byte
	// Time is when the snapshot was saved; stores set it on Save.
	Time time.Time
}

// Store keeps snapshots keyed by (entity type, entity id).
//
// Implementations must be safe for concurrent use and must pass
// snapshotstoretest.Run.
type Store interface {
	// Save stores s, replacing a snapshot of the same entity at the same Seq,
	// then keeps only the keep snapshots of the entity with the highest Seq
	// (keep <= 0 keeps all).
	Save(ctx context.Context, s Snapshot, keep int) error
	// Load returns the entity's snapshot with the highest Seq. found is
	// false, with a nil error, when it has none.
	Load(ctx context.Context, typ, id string) (s Snapshot, found bool, err error)
	// Delete removes all of the entity's snapshots. Deleting none is not an error.
	Delete(ctx context.Context, typ, id string) error
}

// Lister is the optional capability to list all of an entity's snapshots.
type Lister interface {
	// List returns the entity's snapshots in ascending Seq order, none if it
	// has no snapshots.
	List(ctx context.Context, typ, id string) ([]Snapshot, error)
}

// Closer is implemented by stores that hold resources to release.
type Closer interface {
	// Close releases the store's resources. Afterwards the store's methods
	// return [ErrClosed].
	Close() error
}

var (
	// ErrInvalid reports bad arguments: an empty type or id, one over 255
	// bytes, a zero Seq.
	ErrInvalid = errors.New("snapshotstore: invalid argument")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("snapshotstore: closed")
)

// Validate checks a snapshot as every Store must before saving it: the key
// as [ValidateKey] does, and a Seq above 0.
func Validate(s Snapshot) error {
	if err := ValidateKey(s.EntityType, s.EntityID); err != nil {
		return err
	}
	if s.Seq == 0 {
		return fmt.Errorf("%w: snapshot of %s/%s at seq 0", ErrInvalid, streamkey.Format(s.EntityType), streamkey.Format(s.EntityID))
	}
	return nil
}

// MaxIDLen and MaxTypeLen are the longest entity id and entity type name,
// in bytes, that every Store accepts: those of the event log
// (eventlog.MaxIDLen and MaxTypeLen), 255 each.
const (
	MaxIDLen   = streamkey.MaxLen
	MaxTypeLen = streamkey.MaxLen
)

// ValidateKey checks the entity type and id given to a Store, as every
// Store must before any I/O: the rule of the event log (see
// eventlog.ValidateStream), not empty, at most [MaxTypeLen] and [MaxIDLen]
// bytes, valid UTF-8 without NUL bytes. The message quotes a bounded prefix
// of a long id.
func ValidateKey(typ, id string) error {
	if msg := streamkey.Check(typ, id); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return nil
}

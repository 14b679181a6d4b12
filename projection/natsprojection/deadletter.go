package natsprojection

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Compile-time check that DeadLetters is a projection.DeadLetters store.
var _ projection.DeadLetters = (*DeadLetters)(nil)

// DefaultDeadLetterBucket is the dead-letter bucket's name unless
// [WithBucket] says otherwise.
const DefaultDeadLetterBucket = "projection_dead_letters"

// DeadLetters is a [projection.DeadLetters] store in a JetStream key-value
// bucket: one key per dead letter, "<projection>.<position>" (the
// projection's name encoded as for offsets), whose value is the dead
// letter in JSON. Create it with [NewDeadLetters].
//
// A bucket, not a stream of its own: dead letters are addressed by key
// (get, replace, drop one), which is what a bucket does, with history 1
// so a replaced or dropped dead letter leaves nothing behind but a delete
// marker. List reads the projection's keys with a subject filter and
// sorts them by Position; dead letters are few, and listing them is an
// operator's action, not a hot path.
//
// Retry runs the handler, then deletes the key: at least once, like the
// offsets. A crash between the two keeps the dead letter, and retrying it
// again delivers the event a second time.
type DeadLetters struct {
	kv jetstream.KeyValue
}

// NewDeadLetters returns a dead-letter store in the bucket of js
// ([DefaultDeadLetterBucket] unless [WithBucket] says otherwise), creating
// the bucket if it does not exist. The options are [New]'s.
func NewDeadLetters(ctx context.Context, js jetstream.JetStream, opts ...Option) (*DeadLetters, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: natsprojection: nil JetStream", projection.ErrInvalid)
	}
	cfg := config{bucket: DefaultDeadLetterBucket, replicas: 1, storage: jetstream.FileStorage}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	kv, err := bucket(ctx, js, cfg, "eventsourced projection dead letters")
	if err != nil {
		return nil, err
	}
	return &DeadLetters{kv: kv}, nil
}

// letterKey returns the key of the dead letter of name at position.
func letterKey(name string, position uint64) string {
	return key(name) + "." + strconv.FormatUint(position, 10)
}

// stored is a dead letter as the bucket keeps it.
type stored struct {
	Projection string            `json:"projection"`
	EntityType string            `json:"entity_type"`
	EntityID   string            `json:"entity_id"`
	Seq        uint64            `json:"seq"`
	Position   uint64            `json:"position"`
	Name       string            `json:"name"`
	Revision   uint32            `json:"revision"`
	Data       []byte            `json:"data,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	EventTime  time.Time         `json:"event_time"`
	Err        string            `json:"error"`
	Attempts   int               `json:"attempts"`
	Time       time.Time         `json:"time"`
}

// Put implements [projection.DeadLetters].
func (d *DeadLetters) Put(ctx context.Context, dl projection.DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := dl.Record
	val, err := json.Marshal(stored{
		Projection: dl.Projection, EntityType: r.EntityType, EntityID: r.EntityID, Seq: r.Seq, Position: r.Position,
		Name: r.Name, Revision: r.Revision, Data: r.Data, Metadata: r.Metadata, EventTime: r.Time,
		Err: dl.Err, Attempts: dl.Attempts, Time: dl.Time,
	})
	if err != nil {
		return fmt.Errorf("natsprojection: put dead letter of %s at %d: %w", dl.Projection, r.Position, err)
	}
	if _, err := d.kv.Put(ctx, letterKey(dl.Projection, r.Position), val); err != nil {
		return fmt.Errorf("natsprojection: put dead letter of %s at %d: %w", dl.Projection, r.Position, err)
	}
	return nil
}

// List implements [projection.DeadLetters].
func (d *DeadLetters) List(ctx context.Context, name string, after uint64, limit int) ([]projection.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := key(name) + "."
	lister, err := d.kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, fmt.Errorf("natsprojection: list dead letters of %s: %w", name, err)
	}
	var found []uint64
	if lister != nil {
		for k := range lister.Keys() {
			pos, err := strconv.ParseUint(strings.TrimPrefix(k, prefix), 10, 64)
			if err == nil && pos > after {
				found = append(found, pos)
			}
		}
		// Keys closes its channel when the listing ends; Stop then only
		// reports the subscription gone, so its error says nothing.
		_ = lister.Stop()
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the key list may have been cut short
	}
	slices.SortFunc(found, cmp.Compare)
	out := make([]projection.DeadLetter, 0, len(found))
	for _, pos := range found {
		if limit > 0 && len(out) == limit {
			break
		}
		dl, _, err := d.get(ctx, name, pos)
		if errors.Is(err, projection.ErrNotFound) {
			continue // dropped since the keys were listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, nil
}

// Get implements [projection.DeadLetters].
func (d *DeadLetters) Get(ctx context.Context, name string, position uint64) (projection.DeadLetter, error) {
	dl, _, err := d.get(ctx, name, position)
	return dl, err
}

// get returns the dead letter of name at position and its key's revision.
func (d *DeadLetters) get(ctx context.Context, name string, position uint64) (projection.DeadLetter, uint64, error) {
	if err := ctx.Err(); err != nil {
		return projection.DeadLetter{}, 0, err
	}
	e, err := d.kv.Get(ctx, letterKey(name, position))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return projection.DeadLetter{}, 0, fmt.Errorf("natsprojection: %w: %s at position %d", projection.ErrNotFound, name, position)
	}
	if err != nil {
		return projection.DeadLetter{}, 0, fmt.Errorf("natsprojection: get dead letter of %s at %d: %w", name, position, err)
	}
	var s stored
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return projection.DeadLetter{}, 0, fmt.Errorf("natsprojection: dead letter of %s at %d: %w", name, position, err)
	}
	return projection.DeadLetter{
		Projection: s.Projection,
		Record: eventlog.Record{
			EntityType: s.EntityType, EntityID: s.EntityID, Seq: s.Seq, Position: s.Position,
			Name: s.Name, Revision: s.Revision, Data: s.Data, Metadata: s.Metadata, Time: s.EventTime,
		},
		Err: s.Err, Attempts: s.Attempts, Time: s.Time,
	}, e.Revision(), nil
}

// Drop implements [projection.DeadLetters]. It deletes the key only at
// the revision it found, so a dead letter put again meanwhile is not
// dropped unseen: Drop then fails, and Get shows the new one.
func (d *DeadLetters) Drop(ctx context.Context, name string, position uint64) error {
	_, rev, err := d.get(ctx, name, position)
	if err != nil {
		return err
	}
	if err := d.kv.Delete(ctx, letterKey(name, position), jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("natsprojection: drop dead letter of %s at %d: %w", name, position, err)
	}
	return nil
}

// Retry implements [projection.DeadLetters]: it reads the dead letter,
// runs handle, then deletes the key whatever its revision, since handle
// succeeded on the event.
func (d *DeadLetters) Retry(ctx context.Context, name string, position uint64, handle func(ctx context.Context, dl projection.DeadLetter) error) error {
	dl, _, err := d.get(ctx, name, position)
	if err != nil {
		return err
	}
	if err := handle(ctx, dl); err != nil {
		return err
	}
	if err := d.kv.Delete(ctx, letterKey(name, position)); err != nil {
		return fmt.Errorf("natsprojection: retry dead letter of %s at %d: handled, not dropped: %w", name, position, err)
	}
	return nil
}

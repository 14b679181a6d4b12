package projection

import (
	"context"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Decoded is an event as a typed handler gets it: decoded with its entity
// type's event codec, beside its record, whose Data it holds decoded (the
// Position, Seq, entity id and metadata are the record's).
type Decoded[E any] struct {
	eventlog.Record
	// Event is the decoded event.
	Event E
}

// Decode returns a [Handler] that decodes every record of a batch with
// codec, usually the entity type's *binarize.Registry (with its
// upcasters), and calls h with the decoded batch in the same order. A
// record that does not decode fails the batch with an error naming the
// event (type, id, Seq, Position, name); it is retried and then handled by
// the projection's poison policy ([WithPoison]) like any handler error.
// A codec that takes a context (binarize.ContextEventCodec, such as
// binarize/shred's) decodes under the handler's.
//
// h must not keep the slice.
func Decode[E any](codec binarize.EventCodec[E], h func(ctx context.Context, batch []Decoded[E]) error) Handler {
	if codec == nil || h == nil {
		return func(context.Context, []eventlog.Record) error {
			return fmt.Errorf("%w: Decode with a nil codec or handler", ErrInvalid)
		}
	}
	cc, _ := codec.(binarize.ContextEventCodec[E])
	return func(ctx context.Context, batch []eventlog.Record) error {
		out := make([]Decoded[E], len(batch))
		for i, rec := range batch {
			e, err := decode(ctx, codec, cc, rec)
			if err != nil {
				return err
			}
			out[i] = Decoded[E]{Record: rec, Event: e}
		}
		return h(ctx, out)
	}
}

// DecodeEach is [Decode] for a handler of one event at a time: it calls h
// for each event of a batch in order and stops at the first error.
func DecodeEach[E any](codec binarize.EventCodec[E], h func(ctx context.Context, ev Decoded[E]) error) Handler {
	if codec == nil || h == nil {
		return Decode[E](nil, nil)
	}
	cc, _ := codec.(binarize.ContextEventCodec[E])
	return func(ctx context.Context, batch []eventlog.Record) error {
		for _, rec := range batch {
			e, err := decode(ctx, codec, cc, rec)
			if err != nil {
				return err
			}
			if err := h(ctx, Decoded[E]{Record: rec, Event: e}); err != nil {
				return err
			}
		}
		return nil
	}
}

// decode decodes rec with cc if it is not nil, else with codec.
func decode[E any](ctx context.Context, codec binarize.EventCodec[E], cc binarize.ContextEventCodec[E], rec eventlog.Record) (E, error) {
	var e E
	var err error
	if cc != nil {
		e, err = cc.DecodeContext(ctx, rec.Name, rec.Revision, rec.Data)
	} else {
		e, err = codec.Decode(rec.Name, rec.Revision, rec.Data)
	}
	if err != nil {
		ref := EventRef{EntityType: rec.EntityType, EntityID: rec.EntityID, Seq: rec.Seq, Position: rec.Position, Name: rec.Name}
		return e, fmt.Errorf("projection: decode %s: %w", ref, err)
	}
	return e, nil
}

package natslog

import (
	"context"
	"fmt"
	"iter"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The optional capabilities of a Log: listing the entity types and the ids
// of a type, deleting
// an entity's events up to a Seq, and deleting an entity's stream.

// EntityIDs implements [eventlog.IDLister] from the stream's per-subject
// state: one stream info request (paged by the client for many subjects).
// An entity whose events were all deleted with [Log.DeleteTo] stays
// listed. One deleted with [Log.DeleteStream] is not, until it has a new
// event: a second stream info request finds the entities DeleteStream
// ever tombstoned (see tombIndex), and for those whose subject holds one
// message, one multi-subject direct get tells whether it is still the
// tombstone.
func (l *Log) EntityIDs(ctx context.Context, typ string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := eventlog.ValidateType(typ); err != nil {
			yield("", err)
			return
		}
		if l.closed.Load() {
			yield("", errClosed)
			return
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		filter, err := l.subjects.typeFilter(typ)
		if err != nil {
			yield("", err)
			return
		}
		rctx, cancel := l.reqCtx(ctx)
		var info *jetstream.StreamInfo
		err = l.watch.do(rctx, func(ctx context.Context) error {
			var err error
			info, err = l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
			return err
		})
		if err != nil {
			cancel()
			yield("", fmt.Errorf("natslog: entity ids of type %s: %w", typ, err))
			return
		}
		skip, err := l.tombstoned(rctx, filter, info.State.Subjects)
		cancel()
		if err != nil {
			yield("", fmt.Errorf("natslog: entity ids of type %s: %w", typ, err))
			return
		}
		for subj := range info.State.Subjects {
			if skip[subj] {
				continue
			}
			id, err := l.subjects.id(filter, subj)
			if err != nil {
				yield("", err)
				return
			}
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(id, nil) {
				return
			}
		}
	}
}

// EntityTypes implements [eventlog.TypeLister] from the stream's
// per-subject state of every event subject: one stream info request, paged
// by the client, whose size grows with the number of entities, not
// events. A type whose entities were all deleted stays listed while their
// subjects hold a message (a deletion marker or a tombstone).
func (l *Log) EntityTypes(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if l.closed.Load() {
			yield("", errClosed)
			return
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
			return
		}
		filter := l.subjects.allFilter()
		rctx, cancel := l.reqCtx(ctx)
		var info *jetstream.StreamInfo
		err := l.watch.do(rctx, func(ctx context.Context) error {
			var err error
			info, err = l.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
			return err
		})
		cancel()
		if err != nil {
			yield("", fmt.Errorf("natslog: entity types: %w", err))
			return
		}
		seen := make(map[string]bool)
		for subj := range info.State.Subjects {
			tok, _, err := l.subjects.tokens(subj)
			if err != nil {
				yield("", err)
				return
			}
			if seen[tok] {
				continue
			}
			seen[tok] = true
			typ, err := decodeToken(tok)
			if err != nil {
				yield("", fmt.Errorf("natslog: entity types: subject %q: %w", subj, err))
				return
			}
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(typ, nil) {
				return
			}
		}
	}
}

// DeleteTo implements [eventlog.Deleter] by purging the entity's subject
// below the first event it keeps. Deleting every event first appends a
// deletion marker carrying the last Seq (guarded by the expected last
// subject sequence, like an append), so the last Seq survives, then purges
// everything before the marker. Readers skip markers.
func (l *Log) DeleteTo(ctx context.Context, typ, id string, seq uint64) error {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return err
	}
	if l.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if seq == 0 {
		return nil
	}
	subj, err := l.subjects.entity(typ, id)
	if err != nil {
		return err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("natslog: delete %s/%s to seq %d: %w", eventlog.FormatID(typ), eventlog.FormatID(id), seq, err)
	}
	for attempt := 0; ; attempt++ {
		last, found, err := l.last(ctx, subj)
		if err != nil {
			return fail(err)
		}
		if !found {
			return nil
		}
		var below uint64 // purge the subject's messages below this sequence
		switch {
		case seq < last.seq:
			if below, err = l.seek(ctx, subj, 1, last.sseq, seq+1); err != nil {
				return fail(err)
			}
		case last.marker:
			below = last.sseq
		default:
			// Delete everything: a marker keeps the last Seq.
			m := &nats.Msg{Subject: subj, Header: nats.Header{
				hdrSeq:                 []string{strconv.FormatUint(last.seq, 10)},
				hdrMarker:              []string{"1"},
				hdrExpectedLastSubjSeq: []string{strconv.FormatUint(last.sseq, 10)},
			}}
			pos, err := l.publish(ctx, []*nats.Msg{m})
			if isWrongLast(err) && attempt < maxStaleRetries {
				continue // appended to meanwhile: look again
			}
			if err != nil {
				l.cache.forget(subj)
				return fail(err)
			}
			l.cache.set(subj, tail{seq: last.seq, sseq: pos})
			below = pos
		}
		if below <= 1 {
			return nil
		}
		err = l.watch.do(ctx, func(ctx context.Context) error {
			return l.stream.Purge(ctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeSequence(below))
		})
		if err != nil {
			return fail(err)
		}
		return nil
	}
}

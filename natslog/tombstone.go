package natslog

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Tombstones. DeleteStream publishes a marker on the entity's subject with
// the Nats-Rollup: sub header: the server stores it and purges every
// earlier message of the subject in one step, so the marker, carrying the
// last Seq, becomes the subject's only message. The expected last subject
// sequence guards it like an append, so an append racing with it either
// lands before it (and is purged with the rest) or is refused. Readers
// already skip markers and look up an entity's last message before they
// append or read it; that lookup finds the tombstone, at no extra cost.

// codeRollupFailed is the server's error for a rollup the stream does not
// allow (nats-server's JSStreamRollupFailedF).
const codeRollupFailed jetstream.ErrorCode = 10111

// maxDeleteAttempts bounds how often DeleteStream tries again when appends
// to the entity keep moving its last message. The entity runtime appends
// to one entity from one place, so races are rare, but a delete should win
// against a few eager writers rather than fail.
const maxDeleteAttempts = 100

// DeleteStream implements [eventlog.StreamDeleter] with a tombstone message
// that replaces the entity's subject (a subject rollup, which [Setup]
// allows on the stream): final ones refuse every later append with a
// [*eventlog.DeletedError], found on the lookup of the entity's last
// message that refused appends and reads make anyway; reuse ones behave as
// the marker of [Log.DeleteTo]. Before the first tombstone of an entity it
// publishes a small message on a subject of its own, which
// [Log.EntityIDs] uses to skip tombstoned entities. A stream whose server
// refuses rollups (set up by an older release) fails with [ErrNotSetUp].
func (l *Log) DeleteStream(ctx context.Context, typ, id string, reuse bool) (uint64, error) {
	if err := eventlog.ValidateStream(typ, id); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, errClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	subj, err := l.subjects.entity(typ, id)
	if err != nil {
		return 0, err
	}
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	fail := func(err error) (uint64, error) {
		if apiCode(err) == codeRollupFailed {
			err = fmt.Errorf("%w: stream %q does not allow rollups; natslog.Setup fixes it: %w", ErrNotSetUp, l.cfg.stream, err)
		}
		return 0, fmt.Errorf("natslog: delete stream %s/%s: %w", eventlog.FormatID(typ), eventlog.FormatID(id), err)
	}
	kind := markerFinal
	if reuse {
		kind = markerReuse
	}
	indexed := false
	for attempt := 0; ; attempt++ {
		last, found, err := l.last(ctx, subj)
		if err != nil {
			return fail(err)
		}
		switch {
		case last.final && reuse:
			return 0, &eventlog.DeletedError{EntityType: typ, EntityID: id, Seq: last.seq}
		case last.final:
			return last.seq, nil
		}
		if !indexed {
			// First, so that a tombstone is never stored unlisted: an
			// index entry whose tombstone failed costs EntityIDs one look.
			if err := l.indexTombstone(ctx, subj); err != nil {
				return fail(err)
			}
			indexed = true
		}
		var sseq uint64
		if found {
			sseq = last.sseq
		}
		m := &nats.Msg{Subject: subj, Header: nats.Header{
			hdrSeq:                 []string{strconv.FormatUint(last.seq, 10)},
			hdrMarker:              []string{kind},
			hdrRollup:              []string{jetstream.MsgRollupSubject},
			hdrExpectedLastSubjSeq: []string{strconv.FormatUint(sseq, 10)},
		}}
		pos, err := l.publish(ctx, []*nats.Msg{m})
		if isWrongLast(err) && attempt < maxDeleteAttempts {
			continue // appended to meanwhile: tombstone the new last Seq
		}
		if err != nil {
			l.cache.forget(subj)
			return fail(err)
		}
		if reuse {
			l.cache.set(subj, tail{seq: last.seq, sseq: pos})
		} else {
			l.cache.forget(subj)
		}
		return last.seq, nil
	}
}

// indexTombstone lists the entity of subj as tombstoned (see tombIndex). A
// rollup keeps one message per entity however often it is deleted.
func (l *Log) indexTombstone(ctx context.Context, subj string) error {
	m := &nats.Msg{Subject: tombIndex(subj), Header: nats.Header{hdrRollup: []string{jetstream.MsgRollupSubject}}}
	_, err := l.publish(ctx, []*nats.Msg{m})
	return err
}

// tombstoned returns the subjects of subjects (event subjects of the type
// filter, with their message counts) whose only message is a tombstone.
// Only entities listed by indexTombstone can be: it reads that list with
// one stream info request, then the last message of those whose subject
// holds one message with one multi-subject direct get per
// lastBatchMax of them.
func (l *Log) tombstoned(ctx context.Context, filter string, subjects map[string]uint64) (map[string]bool, error) {
	var info *jetstream.StreamInfo
	err := l.watch.do(ctx, func(ctx context.Context) error {
		var err error
		info, err = l.stream.Info(ctx, jetstream.WithSubjectFilter(tombFilter(filter)))
		return err
	})
	if err != nil {
		return nil, err
	}
	var single []string
	for idx := range info.State.Subjects {
		subj := idx[:len(idx)-len(tombIndex(""))]
		if subjects[subj] == 1 {
			single = append(single, subj)
		}
	}
	skip := make(map[string]bool, len(single))
	for len(single) > 0 {
		chunk := single[:min(len(single), lastBatchMax)]
		single = single[len(chunk):]
		found, complete, err := l.multiLast(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, subj := range chunk {
			s, ok := found[subj]
			if !ok && !complete {
				// The server stopped early (too many bytes): ask alone.
				if s, ok, err = l.last(ctx, subj); err != nil {
					return nil, err
				}
			}
			if ok && s.tomb {
				skip[subj] = true
			}
		}
	}
	return skip, nil
}

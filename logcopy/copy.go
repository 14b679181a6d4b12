package logcopy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Stats reports what a [Copy] did.
type Stats struct {
	// Types has one entry per entity type copied, in the order given.
	Types []TypeStats
	// Appended counts the events this call appended to the target; Present
	// those it found there already, equal to the source's, and skipped.
	Appended, Present int64
	// Streams and Events count the source's streams and events that the
	// verification found in the target.
	Streams, Events int64
	// Skipped lists the streams [WithSkipTruncated] left out.
	Skipped []Stream
}

// TypeStats reports the copy of one entity type.
type TypeStats struct {
	EntityType string
	// Position is the source Position the type is copied up to.
	Position uint64
	// Appended and Present are as in [Stats], for this type.
	Appended, Present int64
	// Streams and Events are as in [Stats], for this type; they are set
	// once the type is verified.
	Streams, Events int64
	// Skipped lists the type's streams [WithSkipTruncated] left out.
	Skipped []Stream
	// Verified is set once the type's counts have been checked.
	Verified bool
}

// Stream names a source stream and the Seqs of its readable events.
type Stream struct {
	EntityType string
	EntityID   string
	// FirstSeq and LastSeq are the Seqs of the stream's first and last
	// readable events in the source.
	FirstSeq, LastSeq uint64
}

// Copy copies the events of the entity types types from src to dst, then
// verifies that dst holds as many events of each source stream as src,
// ending at the same Seq. See the package documentation for what is kept
// (Seq, name, revision, data, metadata, and order) and what is not (commit
// time, Position, tombstones, snapshots).
//
// With [WithCheckpoint], a Copy that stops for any reason resumes where it
// stopped when it runs again. Copy does not retry failed appends or reads
// itself: running it again is the retry.
func Copy(ctx context.Context, src, dst eventlog.Log, types []string, opts ...Option) (Stats, error) {
	var st Stats
	if src == nil || dst == nil {
		return st, fmt.Errorf("%w: Copy: nil source or target log", ErrInvalid)
	}
	if len(types) == 0 {
		return st, fmt.Errorf("%w: Copy: no entity types (a log cannot list its types; name them)", ErrInvalid)
	}
	seen := make(map[string]bool, len(types))
	for _, typ := range types {
		if err := eventlog.ValidateType(typ); err != nil {
			return st, fmt.Errorf("%w: Copy: %w", ErrInvalid, err)
		}
		if seen[typ] {
			return st, fmt.Errorf("%w: Copy: type %s named twice", ErrInvalid, eventlog.FormatID(typ))
		}
		seen[typ] = true
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return st, err
	}
	for _, typ := range types {
		c := &copier{src: src, dst: dst, cfg: cfg, typ: typ, skipped: map[string]bool{}}
		ts, err := c.run(ctx)
		st.Types = append(st.Types, ts)
		st.Appended += ts.Appended
		st.Present += ts.Present
		st.Streams += ts.Streams
		st.Events += ts.Events
		st.Skipped = append(st.Skipped, ts.Skipped...)
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// copier copies one entity type.
type copier struct {
	src, dst eventlog.Log
	cfg      *config
	typ      string

	// pending is the Position up to which the target may hold events an
	// interrupted earlier copy wrote: the loaded checkpoint's Pending.
	// Events this call appends are not among them, since a failed append
	// ends the call.
	pending uint64

	appended, present atomic.Int64

	mu      sync.Mutex      // guards skipped
	skipped map[string]bool // streams left out by WithSkipTruncated
}

// run copies the type from its checkpoint to the source's current end and
// verifies it.
func (c *copier) run(ctx context.Context) (TypeStats, error) {
	ts := TypeStats{EntityType: c.typ}
	cp, err := c.cfg.checkpoint.Load(ctx, c.typ)
	if err != nil {
		return ts, fmt.Errorf("%w: load %s: %w", ErrCheckpoint, eventlog.FormatID(c.typ), err)
	}
	after, pending := cp.Copied, max(cp.Pending, cp.Copied)
	c.pending = pending
	ts.Position = after
	stats := func() {
		ts.Appended, ts.Present = c.appended.Load(), c.present.Load()
	}
	window := make([]eventlog.Record, 0, min(c.cfg.every, 4096))
	for {
		window, err = c.read(ctx, after, window[:0])
		if err != nil {
			stats()
			return ts, err
		}
		if len(window) == 0 {
			break
		}
		end := window[len(window)-1].Position
		// Saving the window's end before appending any of it is what lets
		// a resumed copy tell events it wrote itself from a non-empty
		// target.
		pending = max(pending, end)
		if err := c.save(ctx, Checkpoint{Copied: after, Pending: pending}); err != nil {
			stats()
			return ts, err
		}
		if err := c.apply(ctx, window); err != nil {
			stats()
			return ts, err
		}
		after = end
		ts.Position = after
		stats()
		c.report(ts, false)
	}
	if cp != (Checkpoint{Copied: after, Pending: after}) {
		if err := c.save(ctx, Checkpoint{Copied: after, Pending: after}); err != nil {
			stats()
			return ts, err
		}
	}
	stats()
	if err := c.verify(ctx, after, &ts); err != nil {
		return ts, err
	}
	c.report(ts, true)
	return ts, nil
}

func (c *copier) save(ctx context.Context, cp Checkpoint) error {
	if err := c.cfg.checkpoint.Save(ctx, c.typ, cp); err != nil {
		return fmt.Errorf("%w: save %s at position %d: %w", ErrCheckpoint, eventlog.FormatID(c.typ), cp.Copied, err)
	}
	return nil
}

func (c *copier) report(ts TypeStats, verified bool) {
	if c.cfg.progress != nil {
		c.cfg.progress(Progress{EntityType: c.typ, Position: ts.Position, Appended: ts.Appended, Present: ts.Present, Verified: verified})
	}
}

// read appends to w the next window of source events after Position after.
func (c *copier) read(ctx context.Context, after uint64, w []eventlog.Record) ([]eventlog.Record, error) {
	last := after
	for r, err := range c.src.ReadType(ctx, c.typ, after) {
		if err != nil {
			return w, fmt.Errorf("logcopy: read %s from the source after position %d: %w", eventlog.FormatID(c.typ), last, err)
		}
		// A checkpoint is a Position, so a source that broke Position
		// order would make a resumed copy skip events: refuse it.
		if r.EntityType != c.typ || r.Position <= last || r.Seq == 0 {
			return w, fmt.Errorf("logcopy: the source's ReadType(%s, %d) yielded %s/%s seq %d at position %d after position %d: not a record of the type in Position order",
				eventlog.FormatID(c.typ), after, eventlog.FormatID(r.EntityType), eventlog.FormatID(r.EntityID), r.Seq, r.Position, last)
		}
		last = r.Position
		w = append(w, r)
		if len(w) == c.cfg.every {
			break
		}
	}
	return w, nil
}

// work is the events of one stream to append in order: runs of
// consecutive Seqs.
type work struct {
	id   string
	runs [][]eventlog.Record
}

// plan splits a window into work. In order (one append at a time) each run
// of consecutive events of one stream is its own work, so the target gets
// them in the source's order; otherwise all of a stream's events in the
// window are one work, appended in as few calls as the limits allow.
func plan(window []eventlog.Record, ordered bool) []work {
	var out []work
	if ordered {
		start := 0
		for i := 1; i <= len(window); i++ {
			if i == len(window) || window[i].EntityID != window[start].EntityID || window[i].Seq != window[i-1].Seq+1 {
				out = append(out, work{id: window[start].EntityID, runs: [][]eventlog.Record{window[start:i:i]}})
				start = i
			}
		}
		return out
	}
	index := map[string]int{}
	for _, r := range window {
		i, ok := index[r.EntityID]
		if !ok {
			i = len(out)
			index[r.EntityID] = i
			out = append(out, work{id: r.EntityID})
		}
		w := &out[i]
		if n := len(w.runs); n > 0 && w.runs[n-1][len(w.runs[n-1])-1].Seq+1 == r.Seq {
			w.runs[n-1] = append(w.runs[n-1], r)
		} else {
			w.runs = append(w.runs, []eventlog.Record{r})
		}
	}
	return out
}

// apply appends a window to the target.
func (c *copier) apply(ctx context.Context, window []eventlog.Record) error {
	works := plan(window, c.cfg.concurrency == 1)
	if c.cfg.concurrency == 1 || len(works) == 1 {
		for _, w := range works {
			if err := c.do(ctx, w); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards firstErr
		firstErr error
		wg       sync.WaitGroup
	)
	ch := make(chan work)
	for range min(c.cfg.concurrency, len(works)) {
		wg.Go(func() {
			for w := range ch {
				if err := c.do(ctx, w); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
send:
	for _, w := range works {
		select {
		case ch <- w:
		case <-ctx.Done():
			break send
		}
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// The parent's cancellation may have stopped the sending before any
	// append failed.
	return ctx.Err()
}

// do appends one stream's runs, each in batches within the limits.
func (c *copier) do(ctx context.Context, w work) error {
	for _, run := range w.runs {
		for len(run) > 0 {
			if c.isSkipped(w.id) {
				return nil
			}
			n := c.batchLen(run)
			if err := c.appendBatch(ctx, w.id, run[:n]); err != nil {
				return err
			}
			run = run[n:]
		}
	}
	return nil
}

// batchLen is how many events of run go in the next append.
func (c *copier) batchLen(run []eventlog.Record) int {
	size := 0
	for i, r := range run {
		if i == c.cfg.batchEvents {
			return i
		}
		size += recordSize(r)
		if i > 0 && size > c.cfg.batchBytes {
			return i
		}
	}
	return len(run)
}

func recordSize(r eventlog.Record) int {
	n := len(r.Name) + len(r.Data)
	for k, v := range r.Metadata {
		n += len(k) + len(v)
	}
	return n
}

func (c *copier) isSkipped(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skipped[id]
}

// maxConflicts bounds the conflicts one batch may meet before the copy
// gives up: each is another writer on the target stream.
const maxConflicts = 3

// appendBatch appends consecutive events of one stream at their own Seqs.
// Where the target already has some of them, it compares them with the
// source and appends the rest.
func (c *copier) appendBatch(ctx context.Context, id string, recs []eventlog.Record) error {
	conflicts := 0
	for len(recs) > 0 {
		first, end := recs[0].Seq, recs[len(recs)-1].Seq
		events := make([]eventlog.Event, len(recs))
		for i, r := range recs {
			events[i] = eventlog.Event{Name: r.Name, Revision: r.Revision, Data: r.Data, Metadata: r.Metadata}
		}
		_, err := c.dst.Append(ctx, c.typ, id, first-1, events...)
		if err == nil {
			c.appended.Add(int64(len(recs)))
			return nil
		}
		if !errors.Is(err, eventlog.ErrConflict) {
			return fmt.Errorf("logcopy: append %s/%s seq %d..%d to the target: %w", eventlog.FormatID(c.typ), eventlog.FormatID(id), first, end, err)
		}
		if conflicts++; conflicts > maxConflicts {
			return fmt.Errorf("logcopy: append %s/%s seq %d..%d to the target: another writer keeps appending to it: %w", eventlog.FormatID(c.typ), eventlog.FormatID(id), first, end, err)
		}
		last, err := c.dst.LastSeq(ctx, c.typ, id)
		if err != nil {
			return fmt.Errorf("logcopy: read the last seq of %s/%s in the target after a conflict at seq %d: %w", eventlog.FormatID(c.typ), eventlog.FormatID(id), first, err)
		}
		if last < first-1 {
			if last == 0 && c.cfg.skipTruncated {
				c.mu.Lock()
				c.skipped[id] = true
				c.mu.Unlock()
				return nil
			}
			return &GapError{EntityType: c.typ, EntityID: id, Seq: first, TargetLastSeq: last}
		}
		if last == first-1 {
			// The stream is where this append expected it after all (a
			// writer that came and went, a stale answer): try again.
			continue
		}
		n := min(int(last-first+1), len(recs))
		present := recs[:n]
		if !c.cfg.existing {
			for _, r := range present {
				if r.Position > c.pending {
					return &TargetNotEmptyError{EntityType: c.typ, EntityID: id, Seq: r.Seq, TargetLastSeq: last}
				}
			}
		}
		if err := c.compare(ctx, id, present); err != nil {
			return err
		}
		c.present.Add(int64(n))
		recs = recs[n:]
		conflicts = 0
	}
	return nil
}

// compare checks that the target's events at the Seqs of recs are theirs.
func (c *copier) compare(ctx context.Context, id string, recs []eventlog.Record) error {
	i := 0
	for t, err := range c.dst.ReadEntity(ctx, c.typ, id, recs[0].Seq) {
		if err != nil {
			return fmt.Errorf("logcopy: read %s/%s from seq %d in the target to compare: %w", eventlog.FormatID(c.typ), eventlog.FormatID(id), recs[0].Seq, err)
		}
		if t.Seq > recs[i].Seq {
			break // recs[i] is missing.
		}
		if t.Seq < recs[i].Seq {
			continue
		}
		if d := differ(recs[i], t); d != nil {
			return d
		}
		if i++; i == len(recs) {
			return nil
		}
	}
	return &DiffersError{EntityType: c.typ, EntityID: id, Seq: recs[i].Seq, Field: "missing"}
}

package projection

import (
	"context"
	"fmt"
	"hash/fnv"
	"iter"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Slices: a projection split into n slices by a stable hash of the entity,
// so that the events of one entity stay in one slice, in order, while the
// slices run independently, each with its own offset.

// MaxSlices is the most slices a projection may be split into.
const MaxSlices = 1024

// sliceOpt is a projection's slice, n 0 for none.
type sliceOpt struct{ i, n int }

// WithSlice makes the projection slice i of n (0 <= i < n <= [MaxSlices]):
// it handles only the events of the entities that [SliceOf] puts in slice
// i, and keeps its offset under [SliceName](name, i, n), which is also its
// Name. Run the n slices of a projection, each made with the same log,
// types, store and handler and its own WithSlice, in one process or
// several; change n with [Reslice].
func WithSlice(i, n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxSlices || i < 0 || i >= n {
			return fmt.Errorf("%w: WithSlice(%d, %d): want 0 <= i < n <= %d", ErrInvalid, i, n, MaxSlices)
		}
		c.slice = sliceOpt{i, n}
		return nil
	}
}

// SliceOf returns the slice of n that the entity (typ, id) belongs to: a
// 64-bit FNV-1a hash of the type and id, modulo n. It never changes for
// a given n, in any process or release.
func SliceOf(typ, id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return int(h.Sum64() % uint64(n))
}

// SliceName returns the name slice i of n of the projection name stores its
// offset under: "name[i/n]".
func SliceName(name string, i, n int) string {
	return fmt.Sprintf("%s[%d/%d]", name, i, n)
}

// WithSliceKey makes the slices of a sliced projection ([WithSlice])
// split the events by key(rec) instead of by entity: an event belongs to
// slice [SliceOf]("", key(rec), n). The events with one key then stay in
// one slice, in Position order, whichever entities they come from; a
// process manager keys them by the instance they belong to. key must be
// deterministic, and the same in every slice, process and release (change
// it like n, with [Reslice]). Without WithSlice it changes nothing.
func WithSliceKey(key func(rec eventlog.Record) string) Option {
	return func(c *config) error {
		if key == nil {
			return fmt.Errorf("%w: WithSliceKey(nil)", ErrInvalid)
		}
		c.sliceKey = key
		return nil
	}
}

// mine reports whether rec belongs to the projection's slice.
func (p *Projection) mine(rec *eventlog.Record) bool {
	s := p.cfg.slice
	switch {
	case s.n <= 1:
		return true
	case p.cfg.sliceKey != nil:
		return SliceOf("", p.cfg.sliceKey(*rec), s.n) == s.i
	}
	return SliceOf(rec.EntityType, rec.EntityID, s.n) == s.i
}

// Reslice changes the number of slices of a projection, exactly once on a
// transactional offset store (pgprojection): no event is lost or handled
// twice. from are the old slices (slice i of len(from) at index i) and to
// the new ones, made like them but with the new WithSlice; none may run,
// and no other process may run a slice of either meanwhile: stop every
// runner first, call Reslice, then start the new slices.
//
// Reslice brings every old slice up to the highest old offset T, handling
// with its handler the events of its slice it has not handled yet, then
// moves its offset to T; then it sets every new slice's offset to T. So
// each event up to T was handled by exactly one old slice and each event
// after T is left to exactly one new slice. Interrupted, it can be run
// again: it resumes from the offsets stored. A new slice whose offset is
// already past 0 and not T is an error: the new slices were run before.
func Reslice(ctx context.Context, from, to []*Projection) error {
	if err := checkSlices("from", from); err != nil {
		return err
	}
	if err := checkSlices("to", to); err != nil {
		return err
	}
	var target uint64
	offsets := make([]uint64, len(from))
	for i, p := range from {
		off, err := p.store.Load(ctx, p.name)
		if err != nil {
			return fmt.Errorf("projection: reslice: load offset of %s: %w", p.name, err)
		}
		offsets[i] = off
		target = max(target, off)
	}
	for _, p := range to {
		off, err := p.store.Load(ctx, p.name)
		if err != nil {
			return fmt.Errorf("projection: reslice: load offset of %s: %w", p.name, err)
		}
		if off != 0 && off != target {
			return fmt.Errorf("%w: reslice: new slice %s is at offset %d, not 0 or %d: it ran before", ErrInvalid, p.name, off, target)
		}
	}
	for i, p := range from {
		if err := p.catchUp(ctx, offsets[i], target); err != nil {
			return err
		}
	}
	for _, p := range to {
		if err := p.moveTo(ctx, target); err != nil {
			return err
		}
	}
	return nil
}

// checkSlices checks that ps are the slices 0..len-1 of one projection, not
// running.
func checkSlices(what string, ps []*Projection) error {
	if len(ps) == 0 {
		return fmt.Errorf("%w: reslice: no %s slices", ErrInvalid, what)
	}
	for i, p := range ps {
		if p == nil {
			return fmt.Errorf("%w: reslice: %s slice %d is nil", ErrInvalid, what, i)
		}
		if s := p.cfg.slice; s.n != len(ps) || s.i != i {
			return fmt.Errorf("%w: reslice: %s slice at index %d is %s, want slice %d of %d", ErrInvalid, what, i, p.name, i, len(ps))
		}
		p.mu.Lock()
		running := p.running || p.resetting
		p.mu.Unlock()
		if running {
			return fmt.Errorf("%w: reslice: %s runs", ErrRunning, p.name)
		}
	}
	return nil
}

// catchUp handles the events of p's slice after offset up to target, then
// moves the offset to target.
func (p *Projection) catchUp(ctx context.Context, offset, target uint64) error {
	if offset >= target {
		return nil
	}
	batch := make([]eventlog.Record, 0, p.cfg.batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.handle(ctx, batch, &offset)
		batch = batch[:0]
		return err
	}
	for rec, err := range p.readFinite(ctx, offset) {
		if err != nil {
			return fmt.Errorf("projection: reslice: read %s after %d: %w", p.typ, offset, err)
		}
		if rec.Position > target {
			break
		}
		if !p.mine(&rec) {
			continue
		}
		batch = append(batch, rec)
		if len(batch) == p.cfg.batch {
			if err := flush(); err != nil {
				return fmt.Errorf("projection: reslice %s: %w", p.name, err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("projection: reslice %s: %w", p.name, err)
	}
	return p.moveTo(ctx, target)
}

// moveTo moves p's stored offset forward to target, handling nothing:
// the caller knows the events in between are not p's to handle.
func (p *Projection) moveTo(ctx context.Context, target uint64) error {
	off, err := p.store.Load(ctx, p.name)
	if err != nil {
		return fmt.Errorf("projection: reslice: load offset of %s: %w", p.name, err)
	}
	if off >= target {
		return nil
	}
	if err := p.store.Commit(ctx, p.name, off, target, func(context.Context) error { return nil }); err != nil {
		return fmt.Errorf("projection: reslice: move %s from %d to %d: %w", p.name, off, target, err)
	}
	return nil
}

// readFinite reads p's types after after, to the current end.
func (p *Projection) readFinite(ctx context.Context, after uint64) iter.Seq2[eventlog.Record, error] {
	if p.types != nil {
		return p.all.ReadAll(ctx, after, p.types...)
	}
	return p.log.ReadType(ctx, p.typ, after)
}

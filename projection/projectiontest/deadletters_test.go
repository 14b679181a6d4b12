package projectiontest_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

func memoryDeadLetters(*testing.T) projection.DeadLetters { return projection.NewMemoryDeadLetters() }

// TestDeadLetterCasesPassOnMemory checks the harness: every case passes
// against the reference store when run through the recorder.
func TestDeadLetterCasesPassOnMemory(t *testing.T) {
	conformancetest.CheckPass(t, projectiontest.DeadLetterCases(), memoryDeadLetters)
}

func TestDeadLetterCasesAreNamedAndStateRules(t *testing.T) {
	cases := projectiontest.DeadLetterCases()
	conformancetest.CheckCases(t, cases)
	// The two suites may one day run side by side in one report.
	names := map[string]bool{}
	for _, c := range projectiontest.Cases() {
		names[c.Name] = true
	}
	for _, c := range cases {
		if names[c.Name] {
			t.Errorf("dead-letter case %s has the name of an offset store case", c.Name)
		}
	}
}

// TestDeadLetterSuiteDetectsBrokenStores runs cases against stores that
// each break one rule and checks that the cases that should catch it
// fail, saying which rule broke.
func TestDeadLetterSuiteDetectsBrokenStores(t *testing.T) {
	wrap := func(f func(*projection.MemoryDeadLetters) projection.DeadLetters) func(*testing.T) projection.DeadLetters {
		return func(*testing.T) projection.DeadLetters { return f(projection.NewMemoryDeadLetters()) }
	}
	b := conformancetest.Break[projection.DeadLetters]
	conformancetest.CheckCaught(t, projectiontest.DeadLetterCases(), []conformancetest.Broken[projection.DeadLetters]{
		b("LosesMetadata", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return loseMetadata{m} }),
			"PutGet"),
		b("KeepsTheFirstPut", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return keepFirst{m} }),
			"PutReplaces"),
		b("ListsNewestFirst", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return newestFirst{m} }),
			"ListInPositionOrder"),
		b("ListIgnoresLimit", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return noLimit{m} }),
			"ListInPositionOrder"),
		b("DropDropsTheProjection", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return dropAll{m} }),
			"Drop"),
		b("DropOfNothingSucceeds", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return dropQuiet{m} }),
			"Drop"),
		b("RetryDropsBeforeHandle", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return dropFirst{m} }),
			"RetryFails", "RetryCrash"),
		b("RetryNeverDrops", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return neverDrop{m} }),
			"RetrySucceeds"),
		b("RetryRunsHandleOnNothing", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return retryNothing{m} }),
			"RetryNotFound"),
		b("IgnoresCanceledContext", wrap(func(m *projection.MemoryDeadLetters) projection.DeadLetters { return deafDeadLetters{m} }),
			"DeadLettersCanceledContext"),
	})
}

// loseMetadata stores dead letters without their record's metadata.
type loseMetadata struct{ *projection.MemoryDeadLetters }

func (s loseMetadata) Put(ctx context.Context, d projection.DeadLetter) error {
	d.Record.Metadata = nil
	return s.MemoryDeadLetters.Put(ctx, d)
}

// keepFirst ignores a Put under a key already stored.
type keepFirst struct{ *projection.MemoryDeadLetters }

func (s keepFirst) Put(ctx context.Context, d projection.DeadLetter) error {
	if _, err := s.Get(ctx, d.Projection, d.Record.Position); err == nil {
		return nil
	}
	return s.MemoryDeadLetters.Put(ctx, d)
}

// newestFirst lists in reverse Position order.
type newestFirst struct{ *projection.MemoryDeadLetters }

func (s newestFirst) List(ctx context.Context, name string, after uint64, limit int) ([]projection.DeadLetter, error) {
	out, err := s.MemoryDeadLetters.List(ctx, name, after, limit)
	slices.Reverse(out)
	return out, err
}

// noLimit lists everything after after.
type noLimit struct{ *projection.MemoryDeadLetters }

func (s noLimit) List(ctx context.Context, name string, after uint64, _ int) ([]projection.DeadLetter, error) {
	return s.MemoryDeadLetters.List(ctx, name, after, 0)
}

// dropAll drops every dead letter of the projection.
type dropAll struct{ *projection.MemoryDeadLetters }

func (s dropAll) Drop(ctx context.Context, name string, pos uint64) error {
	all, err := s.List(ctx, name, 0, 0)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return s.MemoryDeadLetters.Drop(ctx, name, pos)
	}
	for _, d := range all {
		if err := s.MemoryDeadLetters.Drop(ctx, name, d.Record.Position); err != nil {
			return err
		}
	}
	return nil
}

// dropQuiet drops what does not exist without an error.
type dropQuiet struct{ *projection.MemoryDeadLetters }

func (s dropQuiet) Drop(ctx context.Context, name string, pos uint64) error {
	if err := s.MemoryDeadLetters.Drop(ctx, name, pos); err != nil && !errors.Is(err, projection.ErrNotFound) {
		return err
	}
	return nil
}

// dropFirst drops the dead letter, then runs handle.
type dropFirst struct{ *projection.MemoryDeadLetters }

func (s dropFirst) Retry(ctx context.Context, name string, pos uint64, handle func(context.Context, projection.DeadLetter) error) error {
	d, err := s.Get(ctx, name, pos)
	if err != nil {
		return err
	}
	if err := s.MemoryDeadLetters.Drop(ctx, name, pos); err != nil {
		return err
	}
	return handle(ctx, d)
}

// neverDrop runs handle and keeps the dead letter.
type neverDrop struct{ *projection.MemoryDeadLetters }

func (s neverDrop) Retry(ctx context.Context, name string, pos uint64, handle func(context.Context, projection.DeadLetter) error) error {
	d, err := s.Get(ctx, name, pos)
	if err != nil {
		return err
	}
	return handle(ctx, d)
}

// retryNothing runs handle with an empty dead letter when there is none.
type retryNothing struct{ *projection.MemoryDeadLetters }

func (s retryNothing) Retry(ctx context.Context, name string, pos uint64, handle func(context.Context, projection.DeadLetter) error) error {
	if _, err := s.Get(ctx, name, pos); errors.Is(err, projection.ErrNotFound) {
		return handle(ctx, projection.DeadLetter{Projection: name})
	}
	return s.MemoryDeadLetters.Retry(ctx, name, pos, handle)
}

// deafDeadLetters ignores canceled contexts.
type deafDeadLetters struct{ *projection.MemoryDeadLetters }

func (s deafDeadLetters) Put(ctx context.Context, d projection.DeadLetter) error {
	return s.MemoryDeadLetters.Put(context.WithoutCancel(ctx), d)
}

func (s deafDeadLetters) List(ctx context.Context, name string, after uint64, limit int) ([]projection.DeadLetter, error) {
	return s.MemoryDeadLetters.List(context.WithoutCancel(ctx), name, after, limit)
}

func (s deafDeadLetters) Get(ctx context.Context, name string, pos uint64) (projection.DeadLetter, error) {
	return s.MemoryDeadLetters.Get(context.WithoutCancel(ctx), name, pos)
}

func (s deafDeadLetters) Drop(ctx context.Context, name string, pos uint64) error {
	return s.MemoryDeadLetters.Drop(context.WithoutCancel(ctx), name, pos)
}

func (s deafDeadLetters) Retry(ctx context.Context, name string, pos uint64, handle func(context.Context, projection.DeadLetter) error) error {
	return s.MemoryDeadLetters.Retry(context.WithoutCancel(ctx), name, pos, handle)
}

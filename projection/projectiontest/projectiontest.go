package projectiontest

import (
	"context"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/projection"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a recording fake lets the suite test itself against broken stores.
//
// Fatalf must stop the goroutine running the case, as testing.T's does.
// Cases call it only from that goroutine and report from goroutines they
// start with Errorf.
type TB = conformancetest.TB

// Case is one conformance check of the [projection.OffsetStore] contract:
// its Name names the subtest and is unique within [Cases]; its Rule states
// the contract rule it checks, as a sentence, the one every failure message
// starts with; its Fn runs the check against a fresh store nobody else uses
// and reports failures through t.
type Case = conformancetest.Case[projection.OffsetStore]

// Run runs every case of [Cases] against the stores newStore returns, each
// as a subtest named after the case, with a fresh store per case. newStore
// should register the store's closing with t.Cleanup.
//
// A store is tested as at-least-once unless the value newStore returns
// implements [Transactional], and crashed only inside its handler unless it
// also implements [Crasher]; see the package documentation.
//
// Cases name their projections uniquely, so newStore may return stores that
// share one database or bucket.
func Run(t *testing.T, newStore func(t *testing.T) projection.OffsetStore) {
	t.Helper()
	conformancetest.Run(t, Cases(), newStore)
}

// Transactional is implemented by a store under test that promises
// exactly-once effects: its Commit runs handle and the offset write in one
// transaction, and its Reset runs clear and the offset reset in one. A
// store under test that does not implement it is tested as at-least-once.
//
// The suite calls Write from inside handle and clear, with the context
// they get, as a handler writes its read model; and Count outside of any
// Commit or Reset, to see which writes committed. A backend's test usually
// implements both with a table of its own in the store's database.
type Transactional interface {
	// Write records key once more in the read model, in the transaction
	// of the Commit or Reset that ctx belongs to.
	Write(ctx context.Context, key string) error
	// Count returns how many Writes of key have committed.
	Count(ctx context.Context, key string) (int, error)
}

// Crasher is implemented by a store under test that can be stopped between
// a commit's handler and its offset write, the one point a store's own
// code decides what a crash leaves behind. Stores that do not implement it
// are crashed only inside the handler, after its writes.
type Crasher interface {
	// SetBeforeOffset makes every later Commit call f after handle
	// returned nil and before the offset write; if f returns an error,
	// Commit must return an error without writing the offset, leaving
	// behind what a process that died at that point would. A nil f
	// removes the hook.
	SetBeforeOffset(f func(ctx context.Context) error)
}

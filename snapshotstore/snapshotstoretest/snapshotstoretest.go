package snapshotstoretest

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a recording fake lets the suite test itself against broken stores.
//
// Fatalf must stop the goroutine running the case, as testing.T's does.
// Cases call it only from that goroutine and report from goroutines they
// start with Errorf.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Compile-time check that the testing types satisfy [TB].
var (
	_ TB = (*testing.T)(nil)
	_ TB = testing.TB(nil)
)

// Case is one conformance check of the [snapshotstore.Store] contract.
type Case struct {
	// Name names the subtest; it is unique within [Cases].
	Name string
	// Rule states the contract rule the case checks, as a sentence.
	Rule string
	// Fn runs the check against store, a fresh store nobody else uses. It
	// reports failures through t, each naming the rule that broke.
	Fn func(t TB, store snapshotstore.Store)
}

// Run runs every case of [Cases] against the stores newStore returns, each
// as a subtest named after the case, with a fresh store per case. newStore
// should register the store's closing with t.Cleanup.
//
// Cases name their entities uniquely, so newStore may return stores that
// share one database.
func Run(t *testing.T, newStore func(t *testing.T) snapshotstore.Store) {
	t.Helper()
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			c.Fn(t, newStore(t))
		})
	}
}

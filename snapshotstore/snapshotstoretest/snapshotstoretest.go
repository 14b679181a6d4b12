package snapshotstoretest

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a recording fake lets the suite test itself against broken stores.
//
// Fatalf must stop the goroutine running the case, as testing.T's does.
// Cases call it only from that goroutine and report from goroutines they
// start with Errorf.
type TB = conformancetest.TB

// Case is one conformance check of the [snapshotstore.Store] contract: its
// Name names the subtest and is unique within [Cases]; its Rule states the
// contract rule it checks, as a sentence, the one every failure message
// starts with; its Fn runs the check against a fresh store nobody else uses
// and reports failures through t.
type Case = conformancetest.Case[snapshotstore.Store]

// Run runs every case of [Cases] against the stores newStore returns, each
// as a subtest named after the case, with a fresh store per case. newStore
// should register the store's closing with t.Cleanup.
//
// Cases name their entities uniquely, so newStore may return stores that
// share one database.
func Run(t *testing.T, newStore func(t *testing.T) snapshotstore.Store) {
	t.Helper()
	conformancetest.Run(t, Cases(), newStore)
}

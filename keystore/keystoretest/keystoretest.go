package keystoretest

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/keystore"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a recording fake lets the suite test itself against broken stores.
//
// Fatalf must stop the goroutine running the case, as testing.T's does.
// Cases call it only from that goroutine and report from goroutines they
// start with Errorf.
type TB = conformancetest.TB

// Handles are two handles on one store's storage, as two processes sharing
// a server have. A and B may be the same value for a store that lives in
// one process.
type Handles struct {
	A, B keystore.Store
}

// Case is one conformance check of the [keystore.Store] contract: its Name
// names the subtest and is unique within [Cases]; its Rule states the
// contract rule it checks, as a sentence, the one every failure message
// starts with; its Fn runs the check against fresh handles nobody else
// uses and reports failures through t.
type Case = conformancetest.Case[Handles]

// Run runs every case of [Cases] against the handles open returns, each as
// a subtest named after the case, with fresh handles per case. open should
// register the closing of both with t.Cleanup; closing a handle the case
// closed already may return an error, which the cleanup should ignore.
//
// Cases name their subjects uniquely, so open may return handles on one
// database or bucket that every case shares.
func Run(t *testing.T, open func(t *testing.T) (a, b keystore.Store)) {
	t.Helper()
	conformancetest.Run(t, Cases(), func(t *testing.T) Handles {
		a, b := open(t)
		return Handles{A: a, B: b}
	})
}

package eventlogtest

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a recording fake lets the suite test itself against broken logs.
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

// Case is one conformance check of the [eventlog.Log] contract.
type Case struct {
	// Name names the subtest; it is unique within [Cases].
	Name string
	// Rule states the contract rule the case checks, as a sentence.
	Rule string
	// Fn runs the check against log, a fresh log nobody else uses. It
	// reports failures through t, each naming the rule that broke.
	Fn func(t TB, log eventlog.Log)
}

// Run runs every case of [Cases] against the logs newLog returns, each as a
// subtest named after the case, with a fresh log per case. newLog should
// register the log's closing with t.Cleanup.
//
// Cases name their streams and entity types uniquely, so newLog may return
// logs that share one database.
func Run(t *testing.T, newLog func(t *testing.T) eventlog.Log) {
	t.Helper()
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			c.Fn(t, newLog(t))
		})
	}
}

package eventlogtest

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a recording fake lets the suite test itself against broken logs.
//
// Fatalf must stop the goroutine running the case, as testing.T's does.
// Cases call it only from that goroutine and report from goroutines they
// start with Errorf.
type TB = conformancetest.TB

// Case is one conformance check of the [eventlog.Log] contract: its Name
// names the subtest and is unique within [Cases]; its Rule states the
// contract rule it checks, as a sentence, the one every failure message
// starts with; its Fn runs the check against a fresh log nobody else uses
// and reports failures through t.
type Case = conformancetest.Case[eventlog.Log]

// Run runs every case of [Cases] against the logs newLog returns, each as a
// subtest named after the case, with a fresh log per case. newLog should
// register the log's closing with t.Cleanup.
//
// Cases name their streams and entity types uniquely, so newLog may return
// logs that share one database.
//
// A log that implements [eventlog.AsyncAppender] runs every case a second
// time, under the subtest "async", with its Append going through
// AppendAsync: both paths keep every rule.
func Run(t *testing.T, newLog func(t *testing.T) eventlog.Log) {
	t.Helper()
	conformancetest.Run(t, Cases(), newLog)
	t.Run("async", func(t *testing.T) {
		if _, ok := viaAsync(newLog(t)); !ok {
			t.Log("the log is no eventlog.AsyncAppender: no asynchronous pass")
			return
		}
		conformancetest.Run(t, Cases(), func(t *testing.T) eventlog.Log {
			l, _ := viaAsync(newLog(t))
			return l
		})
	})
}

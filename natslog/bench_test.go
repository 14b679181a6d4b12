package natslog_test

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/eventlog/eventlogtest"
)

// BenchmarkLog runs the shared log benchmarks against an embedded server
// with file storage in a temporary directory.
func BenchmarkLog(b *testing.B) {
	_, js := setup(b)
	eventlogtest.Bench(b, func(b *testing.B) eventlog.Log { return newLog(b, js) })
}

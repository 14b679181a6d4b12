package natslog_test

import (
	"context"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/evolutiontest"
	"github.com/eventsourced-go/eventsourced/internal/natstest"
	"github.com/eventsourced-go/eventsourced/natslog"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestStateEvolution runs the state schema evolution scenarios on NATS
// JetStream: snapshots of an older state revision upcast, skipped or
// refused, with and without the events they cover.
func TestStateEvolution(t *testing.T) {
	evolutiontest.Run(t, func(t *testing.T) (eventlog.Log, snapshotstore.Store) {
		log, js := natstest.Log(t)
		snaps, err := natslog.NewSnapshotStore(context.Background(), js)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { snaps.Close() })
		return log, snaps
	})
}

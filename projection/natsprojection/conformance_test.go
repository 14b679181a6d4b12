package natsprojection_test

import (
	"context"
	"testing"

	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestConformance runs the offset store suite. Every case gets a Store of
// its own on one bucket; the suite names its projections uniquely. The
// store is at-least-once: the suite checks that a crash between the handler
// and the offset update delivers the batch again.
func TestConformance(t *testing.T) {
	js := jetStream(t)
	projectiontest.Run(t, func(t *testing.T) projection.OffsetStore {
		return crasher{newStore(t, js)}
	})
}

// crasher is a Store with its test hook between the handler and the
// offset update.
type crasher struct{ *natsprojection.Store }

var _ projectiontest.Crasher = crasher{}

// SetBeforeOffset implements projectiontest.Crasher.
func (s crasher) SetBeforeOffset(f func(ctx context.Context) error) {
	natsprojection.SetBeforeOffset(s.Store, f)
}

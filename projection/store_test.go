package projection_test

import (
	"testing"

	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestMemoryConformance runs the offset store suite against Memory, which
// is at-least-once: it runs the handler, then moves the offset.
func TestMemoryConformance(t *testing.T) {
	projectiontest.Run(t, func(*testing.T) projection.OffsetStore { return projection.NewMemory() })
}

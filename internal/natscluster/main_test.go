package natscluster_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/eventsourced-go/eventsourced/internal/natscluster"
)

func TestMain(m *testing.M) {
	natscluster.RunIfChild()
	goleak.VerifyTestMain(m)
}

package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// A LazyProvider whose constructor fails fails Start, and Shutdown after it
// returns without calling the provider.
func TestLazyProviderErrorFailsStart(t *testing.T) {
	errBuild := errors.New("no provider today")
	built := 0
	provider := cluster.LazyProvider(func() (protocluster.ClusterProvider, error) {
		built++
		return nil, errBuild
	})
	m, err := cluster.NewMember("lazy", eventlog.NewMemory(), provider)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = m.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), errBuild.Error()) {
		t.Fatalf("Start: %v, want the constructor's error", err)
	}
	if built != 1 {
		t.Errorf("constructor called %d times, want 1", built)
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := provider.Shutdown(true); err != nil {
		t.Errorf("Shutdown of a provider never built: %v", err)
	}
}

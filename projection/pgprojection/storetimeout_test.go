package pgprojection_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// Rule: with projection.WithStoreTimeout, a projection on a server that
// stops answering reports the timeout in its Status and retries; once the
// server answers again it catches up, every event applied exactly once.
func TestStalledServerStoreTimeout(t *testing.T) {
	f := newFixture(t)
	pool, proxy := pgtest.ThroughProxy(t, nil)
	ctx := context.Background()
	store, err := pgprojection.New(pool, pgprojection.WithTable(f.schema+".offsets"), pgprojection.WithControlTable(f.schema+".controls"))
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	const entities = 5
	appendRound := func(round int) (last uint64) {
		for e := range entities {
			pos, err := log.Append(ctx, "Tab", fmt.Sprint(e), uint64(round), eventlog.Event{Name: "E"})
			if err != nil {
				t.Fatal(err)
			}
			last = pos
		}
		return last
	}
	last := appendRound(0)
	p, err := projection.New(log, "Tab", "counts", store, f.handler(), projection.WithBatchSize(entities),
		projection.WithRetry(20*time.Millisecond, 200*time.Millisecond, 1), projection.WithStoreTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(ctx)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitFor(wctx, last); err != nil {
		t.Fatal(err)
	}

	proxy.Stall()
	last = appendRound(1)
	const timedOut = "took longer than WithStoreTimeout(300ms)"
	waitFor(t, "the timeout in the status", func() bool {
		err := p.Status().LastError
		return err != nil && strings.Contains(err.Error(), timedOut)
	})
	if st := p.Status(); st.Poison != nil || !st.Running || st.Offset != uint64(entities) {
		t.Errorf("status during the stall: poison %v, running %v, offset %d; want none, running, %d", st.Poison, st.Running, st.Offset, entities)
	}
	proxy.Resume()
	if err := p.WaitFor(wctx, last); err != nil {
		t.Fatalf("after the stall: %v (status %+v)", err, p.Status())
	}
	want := map[string]int{}
	for e := range entities {
		want[fmt.Sprint(e)] = 2
	}
	if got := f.counts(t); !equalCounts(got, want) {
		t.Errorf("read model %v, want %v: every event exactly once", got, want)
	}
}

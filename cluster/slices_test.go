package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/pgtest"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
)

// pgSchema returns a pool on the test PostgreSQL and a fresh schema,
// dropped at the end (see internal/pgtest).
func pgSchema(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	return pgtest.Schema(t, "cluster_")
}

// TestSlicesOverMembers runs a projection of 8 slices over 3 members with
// its offsets and read model in PostgreSQL, while events are written; one
// member leaves abruptly halfway. Every slice runs on one member at a time
// and every event is counted exactly once.
func TestSlicesOverMembers(t *testing.T) {
	ctx := context.Background()
	pool, sch := pgSchema(t)
	store, err := pgprojection.New(pool, pgprojection.WithTable(sch+".offsets"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE `+sch+`.counts (entity_id text PRIMARY KEY, events int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	handler := pgprojection.Handle(func(ctx context.Context, tx pgx.Tx, batch []eventlog.Record) error {
		for _, rec := range batch {
			if _, err := tx.Exec(ctx, `INSERT INTO `+sch+`.counts (entity_id, events) VALUES ($1, 1)
ON CONFLICT (entity_id) DO UPDATE SET events = counts.events + 1`, rec.EntityID); err != nil {
				return err
			}
		}
		return nil
	})
	log := eventlog.NewMemory()
	const n = 8
	open := func(i, n int) (*projection.Projection, error) {
		return projection.New(log, "Tally", "counts", store, handler, projection.WithSlice(i, n),
			projection.WithBatchSize(16), projection.WithRetry(5*time.Millisecond, 50*time.Millisecond, 1000))
	}
	agent := testprovider.NewInMemAgent()
	var members []*cluster.Member
	var sliced []*cluster.Slices
	for range 3 {
		nd := newNode(t, "slices", log, testprovider.NewTestProvider(agent))
		s, err := cluster.RegisterSlices(nd.m, "counts", n, open)
		if err != nil {
			t.Fatal(err)
		}
		members, sliced = append(members, nd.m), append(sliced, s)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cluster.StartAll(sctx, members...); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, m := range members[:2] {
			m.Shutdown(ctx)
		}
	}()

	// Each slice runs on exactly one member.
	placed := func(live []*cluster.Slices) bool {
		count := make([]int, n)
		for _, s := range live {
			for _, i := range s.Running() {
				count[i]++
			}
		}
		for _, c := range count {
			if c != 1 {
				return false
			}
		}
		return true
	}
	waitUntil(t, "every slice placed once", func() bool { return placed(sliced) })
	// The member that leaves is the one running the most slices (rendezvous
	// hashing may leave a member none of 8).
	victim := 0
	for i, s := range sliced {
		if len(s.Running()) > len(sliced[victim].Running()) {
			victim = i
		}
	}
	members[victim], members[2] = members[2], members[victim]
	sliced[victim], sliced[2] = sliced[2], sliced[victim]
	moved := sliced[2].Running()

	// Writers, during which member 2 leaves abruptly.
	const entities, each = 40, 25
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for k := range each {
				for e := w; e < entities; e += 4 {
					if _, err := log.Append(ctx, "Tally", fmt.Sprintf("t-%d", e), uint64(k), eventlog.Event{Name: "Added"}); err != nil {
						t.Error(err)
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(30 * time.Millisecond)
	gone, gctx := members[2], canceledCtx()
	gone.Shutdown(gctx) // at once: its slices stop mid-batch
	wg.Wait()
	waitUntil(t, "the slices of the member that left placed again", func() bool { return placed(sliced[:2]) })
	if len(moved) == 0 || len(sliced[2].Running()) != 0 {
		t.Fatalf("the member that left ran slices %v and runs %v now; want some, then none", moved, sliced[2].Running())
	}

	// Every slice catches up with the log.
	last := make([]uint64, n)
	for rec, err := range log.ReadType(ctx, "Tally", 0) {
		if err != nil {
			t.Fatal(err)
		}
		last[projection.SliceOf("Tally", rec.EntityID, n)] = rec.Position
	}
	for i := range n {
		var p *projection.Projection
		for _, s := range sliced[:2] {
			if q := s.Slice(i); q != nil {
				p = q
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.WaitFor(wctx, last[i])
		cancel()
		if err != nil {
			t.Fatalf("slice %d: %v; status %+v", i, err, p.Status())
		}
	}
	rows, err := pool.Query(ctx, `SELECT entity_id, events FROM `+sch+`.counts`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var id string
		var c int
		if err := rows.Scan(&id, &c); err != nil {
			t.Fatal(err)
		}
		got[id] = c
	}
	if len(got) != entities {
		t.Fatalf("%d entities counted, want %d", len(got), entities)
	}
	for id, c := range got {
		if c != each {
			t.Errorf("%s counted %d events, want %d: each exactly once", id, c, each)
		}
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// waitUntil polls cond for up to 20 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRegisterSlicesRefusals(t *testing.T) {
	nd := newNode(t, "refusals", eventlog.NewMemory(), testprovider.NewTestProvider(testprovider.NewInMemAgent()))
	t.Cleanup(func() { nd.m.Shutdown(context.Background()) })
	open := func(i, n int) (*projection.Projection, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		n    int
		open func(i, n int) (*projection.Projection, error)
		want string
	}{
		{"", 4, open, "cluster: invalid argument: RegisterSlices with an empty projection name"},
		{"p", 0, open, `cluster: invalid argument: RegisterSlices "p": 0 slices, want 1 to 1024`},
		{"p", 4, nil, `cluster: invalid argument: RegisterSlices "p" with a nil open function`},
	} {
		if _, err := cluster.RegisterSlices(nd.m, tc.name, tc.n, tc.open); err == nil || err.Error() != tc.want {
			t.Errorf("RegisterSlices(%q, %d): %v\nwant %s", tc.name, tc.n, err, tc.want)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// TestEntitiesSurviveServerRestart restarts the embedded NATS server while
// 1,000 counter entities take increments through the entity runtime. Each
// increment carries a unique token in its metadata, which its event keeps.
// Afterwards every acknowledged increment's event is in the stream exactly
// once, at the Seq its reply reported (the counter's value is its Seq), no
// token is stored twice, and every counter took increments again after the
// restart.
func TestEntitiesSurviveServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server under load")
	}
	const counters = 1000
	dir := t.TempDir()
	// A port no listen(:0) of another test takes while the server is down.
	port := freeport.Port(t)
	srv, err := natslog.StartEmbedded(dir, natslog.WithServerPort(port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown() }()
	nc, err := srv.Connect(nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	log, err := natslog.New(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	snaps, err := natslog.NewSnapshotStore(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.Close()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	kind, err := entity.Register(sys, CounterType(), entity.WithSnapshotEvery(5), entity.WithStoreTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	var (
		acked     atomic.Int64
		failed    atomic.Int64
		restarted atomic.Bool
		continued atomic.Int64
		mu        sync.Mutex                         // guards ackedAt
		ackedAt   = make(map[string]int, 8*counters) // token -> the value (Seq) its reply reported
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		lastErrs  = make([]atomic.Value, counters) // the last error of each counter
		resumed   = make([]atomic.Bool, counters)  // took an increment after the restart
	)
	for c := range counters {
		wg.Go(func() {
			ref := kind.Ref("c-" + strconv.Itoa(c))
			after := false
			for attempt := 0; ; attempt++ {
				select {
				case <-stop:
					return
				default:
				}
				token := fmt.Sprintf("%d/%d", c, attempt)
				wasRestarted := restarted.Load()
				actx, acancel := context.WithTimeout(entity.WithMetadata(ctx, map[string]string{"token": token}), 10*time.Second)
				v, err := entity.Ask(actx, ref, Increment{By: 1})
				acancel()
				if err != nil {
					// Back off as a client would: 1,000 callers retrying at
					// once must not keep the recovering server overloaded
					// with requests they have stopped waiting for.
					failed.Add(1)
					lastErrs[c].Store(err.Error())
					time.Sleep(time.Duration(100+rand.IntN(100)) * time.Millisecond)
					continue
				}
				acked.Add(1)
				mu.Lock()
				ackedAt[token] = v
				mu.Unlock()
				if wasRestarted && !after {
					after = true
					resumed[c].Store(true)
					continued.Add(1)
				}
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				close(stop)
				wg.Wait()
				shown := 0
				for c := range counters {
					if !resumed[c].Load() && shown < 5 {
						shown++
						t.Logf("c-%d did not resume; its last error: %v", c, lastErrs[c].Load())
					}
				}
				dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, _, lerr := snaps.Load(dctx, "Counter", "c-0")
				_, rerr := log.LastSeq(dctx, "Counter", "c-0")
				dcancel()
				t.Logf("diagnostics: conn %v, load c-0: %v, last seq c-0: %v, stats %+v", nc.Status(), lerr, rerr, nc.Stats())
				t.Fatalf("timed out waiting for %s (acked %d, failed %d)", what, acked.Load(), failed.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	began := time.Now()
	waitFor("increments before the restart", func() bool { return acked.Load() >= 3000 })
	t.Logf("%d increments acknowledged in %v; restarting the server", acked.Load(), time.Since(began).Round(time.Millisecond))
	srv.Shutdown()
	time.Sleep(300 * time.Millisecond)
	restarted.Store(true)
	if srv, err = natslog.StartEmbedded(dir, natslog.WithServerPort(port)); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	back := time.Now()
	waitFor("every counter to take an increment after the restart", func() bool { return continued.Load() == counters })
	t.Logf("every counter took an increment within %v of the restart", time.Since(back).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	t.Logf("%d increments acknowledged, %d failed (outcome unknown or entity recovering)", acked.Load(), failed.Load())

	stored := make(map[string]int) // token -> Seq
	lastSeq := make(map[string]uint64)
	for rec, err := range log.ReadType(ctx, "Counter", 0) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Seq != lastSeq[rec.EntityID]+1 {
			t.Fatalf("%s: Seq %d follows %d", rec.EntityID, rec.Seq, lastSeq[rec.EntityID])
		}
		lastSeq[rec.EntityID] = rec.Seq
		token := rec.Metadata["token"]
		if prev, dup := stored[token]; dup {
			t.Errorf("increment %s stored twice, at Seq %d and %d", token, prev, rec.Seq)
		}
		stored[token] = int(rec.Seq)
	}
	if len(lastSeq) != counters {
		t.Errorf("%d counters have events, want %d", len(lastSeq), counters)
	}
	for token, v := range ackedAt {
		if seq, ok := stored[token]; !ok {
			t.Errorf("acknowledged increment %s (reply %d) is not in the stream", token, v)
		} else if seq != v {
			t.Errorf("acknowledged increment %s replied %d but is stored at Seq %d", token, v, seq)
		}
	}
	t.Logf("%d events stored, %d acknowledged", len(stored), len(ackedAt))
}

package natslog_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/freeport"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// TestRestartUnderLoad restarts the embedded server while 1,000 entities
// append, each as the entity runtime does: one append in flight, and after
// an error whose outcome is unknown, re-reading the entity before going on.
// Every acknowledged event must be in the stream exactly once, no event may
// be stored twice, every entity's Seqs must stay 1..n, every entity must
// append again after the restart, and a live subscriber must see every event
// once, across the restart.
func TestRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server under load")
	}
	const (
		entities      = 1000
		typ           = "Account"
		beforeRestart = 3000 // acknowledged appends before the restart
		downtime      = 300 * time.Millisecond
	)
	dir := t.TempDir()
	// A port below the ephemeral range, so that no outgoing connection
	// takes it while the server is down.
	port := freeport.Port(t)
	srv, err := natslog.StartEmbedded(dir, natslog.WithServerPort(port))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown() }()
	// The connection reconnects every 100ms, forever; its complaints about
	// the broken pipe are expected here.
	nc, err := srv.Connect(nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := natslog.Setup(ctx, js); err != nil {
		t.Fatal(err)
	}
	l, err := natslog.New(ctx, js, natslog.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// The live subscriber collects every event it sees.
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	var subMu sync.Mutex // guards subSeen and subErr
	subSeen := make(map[string]int)
	var subErr error
	var subWG sync.WaitGroup
	subWG.Go(func() {
		for rec, err := range l.Subscribe(subCtx, typ, 0) {
			subMu.Lock()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					subErr = err
				}
				subMu.Unlock()
				return
			}
			subSeen[string(rec.Data)]++
			subMu.Unlock()
		}
	})

	var (
		acked      atomic.Int64 // acknowledged appends
		restarted  atomic.Bool
		unknown    atomic.Int64 // appends whose outcome was unknown
		continued  atomic.Int64 // entities with an acknowledged append after the restart
		ackedMu    sync.Mutex   // guards ackedData
		ackedData  = make(map[string]string, 8*entities)
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		finalSeqs  = make([]uint64, entities)
		entityErrs = make([]error, entities)
	)
	idOf := func(e int) string { return "acc-" + strconv.Itoa(e) }
	for e := range entities {
		wg.Go(func() {
			id := idOf(e)
			var seq uint64 // the entity's last Seq as far as it knows
			after := false
			for attempt := 0; ; attempt++ {
				select {
				case <-stop:
					finalSeqs[e] = seq
					return
				default:
				}
				data := fmt.Sprintf("%s/%d", id, attempt)
				wasRestarted := restarted.Load()
				actx, acancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := l.Append(actx, typ, id, seq, eventlog.Event{Name: "Deposited", Data: []byte(data)})
				acancel()
				if err == nil {
					seq++
					acked.Add(1)
					ackedMu.Lock()
					ackedData[data] = fmt.Sprintf("%s#%d", id, seq)
					ackedMu.Unlock()
					if wasRestarted && !after {
						after = true
						continued.Add(1)
					}
					continue
				}
				if ctx.Err() != nil {
					entityErrs[e] = fmt.Errorf("%s: gave up: %v", id, err)
					finalSeqs[e] = seq
					return
				}
				if !errors.Is(err, eventlog.ErrConflict) {
					unknown.Add(1)
				}
				// Unknown outcome or conflict: recover the last Seq from the
				// log, as the entity runtime does, retrying until it answers.
				for {
					rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
					last := seq
					var rerr error
					for rec, err := range l.ReadEntity(rctx, typ, id, seq+1) {
						if err != nil {
							rerr = err
							break
						}
						if rec.Seq != last+1 {
							rerr = fmt.Errorf("gap: Seq %d after %d", rec.Seq, last)
							break
						}
						last = rec.Seq
					}
					rcancel()
					if rerr == nil {
						seq = last
						break
					}
					if strings.Contains(rerr.Error(), "gap") || ctx.Err() != nil {
						entityErrs[e] = fmt.Errorf("%s: recover: %v", id, rerr)
						finalSeqs[e] = seq
						return
					}
					// Back off as a client would, so 1,000 entities do not
					// keep the restarting server busy with requests they
					// have stopped waiting for.
					time.Sleep(time.Duration(50+rand.IntN(50)) * time.Millisecond)
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
				t.Fatalf("timed out waiting for %s (acked %d)", what, acked.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("appends before the restart", func() bool { return acked.Load() >= beforeRestart })
	srv.Shutdown()
	t.Logf("server stopped after %d acknowledged appends", acked.Load())
	time.Sleep(downtime)
	restarted.Store(true)
	srv, err = natslog.StartEmbedded(dir, natslog.WithServerPort(port))
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	ackedAtRestart := acked.Load()
	waitFor("every entity to append after the restart", func() bool { return continued.Load() == entities })
	close(stop)
	wg.Wait()
	t.Logf("%d acknowledged appends (%d after the restart), %d with an unknown outcome", acked.Load(), acked.Load()-ackedAtRestart, unknown.Load())
	for _, err := range entityErrs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}

	// Every event in the stream, read by type, exactly once.
	stored := make(map[string]string)
	lastSeq := make(map[string]uint64)
	for rec, err := range l.ReadType(ctx, typ, 0) {
		if err != nil {
			t.Fatal(err)
		}
		data := string(rec.Data)
		if prev, dup := stored[data]; dup {
			t.Errorf("event %s stored twice: %s and %s#%d", data, prev, rec.EntityID, rec.Seq)
		}
		stored[data] = fmt.Sprintf("%s#%d", rec.EntityID, rec.Seq)
		if rec.Seq != lastSeq[rec.EntityID]+1 {
			t.Errorf("%s: Seq %d follows %d", rec.EntityID, rec.Seq, lastSeq[rec.EntityID])
		}
		lastSeq[rec.EntityID] = rec.Seq
	}
	missing := 0
	for data, at := range ackedData {
		got, ok := stored[data]
		switch {
		case !ok:
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged event %s (%s) is not in the stream", data, at)
			}
		case got != at:
			t.Errorf("acknowledged event %s at %s is stored at %s", data, at, got)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged events are missing", missing, len(ackedData))
	}
	for e := range entities {
		if got := lastSeq[idOf(e)]; got != finalSeqs[e] {
			t.Errorf("%s: the stream ends at Seq %d, the entity at %d", idOf(e), got, finalSeqs[e])
		}
	}
	t.Logf("%d events stored, %d acknowledged", len(stored), len(ackedData))

	// The subscriber saw every stored event once, across the restart.
	deadline := time.Now().Add(20 * time.Second)
	for {
		subMu.Lock()
		n, err := len(subSeen), subErr
		subMu.Unlock()
		if n >= len(stored) || err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopSub()
	subWG.Wait()
	if subErr != nil {
		t.Errorf("the subscription failed: %v", subErr)
	}
	for data, k := range subSeen {
		if k != 1 {
			t.Errorf("the subscriber saw %s %d times", data, k)
		}
		if _, ok := stored[data]; !ok {
			t.Errorf("the subscriber saw %s, which is not stored", data)
		}
	}
	if len(subSeen) != len(stored) {
		t.Errorf("the subscriber saw %d events, %d are stored", len(subSeen), len(stored))
	}
}

package natsprojection_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/natsprojection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// TestDeadLetterConformance runs the dead-letter suite on one bucket. The
// store is at-least-once: the suite checks that a crash in Retry's handle
// keeps the dead letter.
func TestDeadLetterConformance(t *testing.T) {
	js := jetStream(t)
	projectiontest.RunDeadLetters(t, func(t *testing.T) projection.DeadLetters {
		d, err := natsprojection.NewDeadLetters(t.Context(), js)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestDeadLetterOptions(t *testing.T) {
	if _, err := natsprojection.NewDeadLetters(t.Context(), nil); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("NewDeadLetters(nil): %v, want ErrInvalid", err)
	}
	js := jetStream(t)
	if _, err := natsprojection.NewDeadLetters(t.Context(), js, natsprojection.WithBucket("a.b")); !errors.Is(err, projection.ErrInvalid) {
		t.Errorf("NewDeadLetters with a bad bucket: %v, want ErrInvalid", err)
	}
	// The bucket is created once and found afterwards, apart from the
	// offsets'.
	for range 2 {
		if _, err := natsprojection.NewDeadLetters(t.Context(), js, natsprojection.WithMemoryStorage()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.KeyValue(t.Context(), natsprojection.DefaultDeadLetterBucket); err != nil {
		t.Errorf("bucket %s: %v", natsprojection.DefaultDeadLetterBucket, err)
	}
}

// TestSkipRetryAndSetOffset runs a projection with its offset and dead
// letters in NATS: a skipped event is dead-lettered, retried once fixed,
// and SetOffset rewinds the projection.
func TestSkipRetryAndSetOffset(t *testing.T) {
	js := jetStream(t)
	ctx := t.Context()
	store := newStore(t, js)
	dls, err := natsprojection.NewDeadLetters(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	log := eventlog.NewMemory()
	var pos []uint64
	for i := range 3 {
		p, err := log.Append(ctx, "Tab", "t1", uint64(i), eventlog.Event{Name: "E", Data: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		pos = append(pos, p)
	}
	var mu sync.Mutex // guards handled
	var handled []uint64
	var broken atomic.Bool
	broken.Store(true)
	h := projection.PerEvent(func(_ context.Context, rec eventlog.Record) error {
		if rec.Seq == 2 && broken.Load() {
			return errors.New("boom")
		}
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, rec.Position)
		return nil
	})
	p, err := projection.New(log, "Tab", "tab.events", store, h, projection.WithPoison(projection.SkipPoison),
		projection.WithDeadLetters(dls), projection.WithRetry(time.Millisecond, time.Millisecond, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, pos[2]); err != nil {
		t.Fatal(err)
	}
	got, err := p.ListDeadLetters(ctx, 0, 0)
	if err != nil || len(got) != 1 || got[0].Record.Position != pos[1] || got[0].Err != "boom" || string(got[0].Record.Data) != "1" {
		t.Fatalf("dead letters %+v, %v; want the one at %d", got, err, pos[1])
	}
	broken.Store(false)
	if err := p.RetryDeadLetter(ctx, pos[1]); err != nil {
		t.Fatalf("RetryDeadLetter: %v", err)
	}
	if got, err := p.ListDeadLetters(ctx, 0, 0); err != nil || len(got) != 0 {
		t.Errorf("dead letters after the retry: %+v, %v; want none", got, err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.SetOffset(ctx, pos[0]); err != nil {
		t.Fatalf("SetOffset: %v", err)
	}
	if off, err := store.Load(ctx, "tab.events"); err != nil || off != pos[0] {
		t.Errorf("stored offset %d, %v; want %d", off, err, pos[0])
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	if err := p.WaitFor(ctx, pos[2]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{pos[0], pos[2], pos[1], pos[1], pos[2]}; !slices.Equal(handled, want) {
		t.Errorf("handled %v, want %v", handled, want)
	}
}

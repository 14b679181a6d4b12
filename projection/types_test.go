package projection_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// TestProjectionOfSeveralTypes: a projection of several types handles
// their events in one Position order, and only theirs.
func TestProjectionOfSeveralTypes(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	var want, wantAll []string
	for i := range 5 {
		for _, typ := range []string{"Tab", "Waiter", "Other"} {
			id := fmt.Sprintf("%s-%d", typ, i%2)
			last, _ := log.LastSeq(ctx, typ, id)
			pos, err := log.Append(ctx, typ, id, last, eventlog.Event{Name: "E"})
			if err != nil {
				t.Fatal(err)
			}
			line := fmt.Sprintf("%d %s/%s", pos, typ, id)
			if typ != "Other" {
				want = append(want, line)
			}
			wantAll = append(wantAll, line)
		}
	}
	for _, tc := range []struct {
		types     []string
		want      []string
		label     string
		wantTypes []string
	}{
		{[]string{"Tab", "Waiter"}, want, "Tab,Waiter", []string{"Tab", "Waiter"}},
		{nil, wantAll, "*", []string{}},
	} {
		var mu sync.Mutex
		var got []string
		h := projection.PerEvent(func(_ context.Context, rec eventlog.Record) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%d %s/%s", rec.Position, rec.EntityType, rec.EntityID))
			return nil
		})
		p, err := projection.NewOfTypes(log, tc.types, "board-"+tc.label, projection.NewMemory(), h, projection.WithBatchSize(4))
		if err != nil {
			t.Fatal(err)
		}
		start(t, p)
		var lastPos uint64
		fmt.Sscan(tc.want[len(tc.want)-1], &lastPos)
		if err := p.WaitFor(ctx, lastPos); err != nil {
			t.Fatal(err)
		}
		st := p.Status()
		stop(t, p)
		mu.Lock()
		if !slices.Equal(got, tc.want) {
			t.Fatalf("types %v: handled\n %v\nwant\n %v", tc.types, got, tc.want)
		}
		mu.Unlock()
		if st.EntityType != tc.label || !slices.Equal(st.EntityTypes, tc.wantTypes) || st.Offset != lastPos {
			t.Fatalf("types %v: status %q %q offset %d; want %q %q %d", tc.types, st.EntityType, st.EntityTypes, st.Offset, tc.label, tc.wantTypes, lastPos)
		}
	}
}

// plainLog hides every capability of a Log but the contract.
type plainLog struct{ eventlog.Log }

func TestNewOfTypesRefusals(t *testing.T) {
	h := projection.PerEvent(func(context.Context, eventlog.Record) error { return nil })
	_, err := projection.NewOfTypes(plainLog{eventlog.NewMemory()}, []string{"Tab"}, "p", projection.NewMemory(), h)
	const want = "projection: invalid argument: projection p: the log (projection_test.plainLog) cannot read several entity types in one order (eventlog.AllReader)"
	if !errors.Is(err, projection.ErrInvalid) || err.Error() != want {
		t.Fatalf("a log without AllReader: %v\nwant %s", err, want)
	}
	_, err = projection.NewOfTypes(eventlog.NewMemory(), []string{"Tab", ""}, "p", projection.NewMemory(), h)
	const wantType = "projection: invalid argument: projection p: eventlog: invalid argument: empty entity type"
	if !errors.Is(err, projection.ErrInvalid) || err.Error() != wantType {
		t.Fatalf("an empty type: %v\nwant %s", err, wantType)
	}
}

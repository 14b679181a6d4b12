package snapshotstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
)

func newMemory(t testing.TB) *snapshotstore.Memory {
	m := snapshotstore.NewMemory()
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestMemory(t *testing.T) {
	snapshotstoretest.Run(t, func(t *testing.T) snapshotstore.Store { return newMemory(t) })
}

func TestMemoryStoresCopies(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t)
	data := []byte("state-1")
	if err := m.Save(ctx, snapshotstore.Snapshot{EntityType: "t", EntityID: "a", Seq: 1, Data: data}, 0); err != nil {
		t.Fatal(err)
	}
	copy(data, "XXXXXXX")
	s, _, err := m.Load(ctx, "t", "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Data); got != "state-1" {
		t.Errorf("after the saver mutated its slice: got %q, want %q", got, "state-1")
	}
	copy(s.Data, "YYYYYYY")
	list, err := m.List(ctx, "t", "a")
	if err != nil {
		t.Fatal(err)
	}
	copy(list[0].Data, "ZZZZZZZ")
	s, _, err = m.Load(ctx, "t", "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Data); got != "state-1" {
		t.Errorf("after loaders mutated theirs: got %q, want %q", got, "state-1")
	}
}

func TestMemoryClose(t *testing.T) {
	ctx := context.Background()
	m := snapshotstore.NewMemory()
	s := snapshotstore.Snapshot{EntityType: "t", EntityID: "a", Seq: 1}
	if err := m.Save(ctx, s, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, _, loadErr := m.Load(ctx, "t", "a")
	_, listErr := m.List(ctx, "t", "a")
	for name, err := range map[string]error{
		"Save":   m.Save(ctx, s, 0),
		"Load":   loadErr,
		"Delete": m.Delete(ctx, "t", "a"),
		"List":   listErr,
		"Close":  m.Close(),
	} {
		if !errors.Is(err, snapshotstore.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestMemoryCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := newMemory(t)
	err := m.Save(ctx, snapshotstore.Snapshot{EntityType: "t", EntityID: "a", Seq: 1}, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Save with a canceled ctx: got %v, want context.Canceled", err)
	}
}

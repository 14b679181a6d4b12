package snapshotstoretest_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/snapshotstore"
	"github.com/eventsourced-go/eventsourced/snapshotstore/snapshotstoretest"
)

// fakeTB records the failures of a case instead of failing the test that
// runs it, so the suite can be run against stores that must fail it.
type fakeTB struct {
	name string

	// mu guards failed, msgs and cleanups: cases report from goroutines.
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
}

var _ snapshotstoretest.TB = (*fakeTB)(nil)

func (f *fakeTB) Helper()                         {}
func (f *fakeTB) Name() string                    { return f.name }
func (f *fakeTB) Logf(format string, args ...any) {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

// Fatalf records the failure and ends the case's goroutine, like
// testing.T.FailNow.
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// runCase runs c against store in its own goroutine, then the cleanups.
func runCase(t *testing.T, c snapshotstoretest.Case, store snapshotstore.Store) *fakeTB {
	f := &fakeTB{name: t.Name() + "/" + c.Name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Fn(f, store)
	}()
	<-done
	for _, fn := range slices.Backward(f.cleanups) {
		fn()
	}
	return f
}

func TestCasesPassOnMemory(t *testing.T) {
	for _, c := range snapshotstoretest.Cases() {
		m := snapshotstore.NewMemory()
		if f := runCase(t, c, m); f.failed {
			t.Errorf("case %s failed against Memory:\n%s", c.Name, strings.Join(f.msgs, "\n"))
		}
		m.Close()
	}
}

// TestSuiteDetectsBrokenStores runs cases against stores that each break
// one rule and checks that the cases fail, saying which rule broke.
func TestSuiteDetectsBrokenStores(t *testing.T) {
	byName := make(map[string]snapshotstoretest.Case)
	for _, c := range snapshotstoretest.Cases() {
		byName[c.Name] = c
	}
	for _, tc := range []struct {
		name     string
		wrap     func(*snapshotstore.Memory) snapshotstore.Store
		mustFail []string
	}{
		{"LoadsLastSaved", func(m *snapshotstore.Memory) snapshotstore.Store { return &lastSaved{Memory: m} },
			[]string{"SaveLoadLatest"}},
		{"IgnoresKeep", func(m *snapshotstore.Memory) snapshotstore.Store { return ignoreKeep{m} },
			[]string{"KeepLastK"}},
		{"TruncatesData", func(m *snapshotstore.Memory) snapshotstore.Store { return truncate{m} },
			[]string{"LargeSnapshot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range tc.mustFail {
				m := snapshotstore.NewMemory()
				f := runCase(t, byName[name], tc.wrap(m))
				m.Close()
				if !f.failed {
					t.Errorf("case %s passed against a store that %s", name, tc.name)
					continue
				}
				for _, msg := range f.msgs {
					if !strings.HasPrefix(msg, "rule: ") {
						t.Errorf("case %s reported %q, which does not name the rule that broke", name, msg)
					}
				}
				t.Logf("case %s: %s", name, f.msgs[0])
			}
		})
	}
}

// lastSaved loads the snapshot saved last rather than the highest Seq.
type lastSaved struct {
	*snapshotstore.Memory

	// mu guards last.
	mu   sync.Mutex
	last map[[2]string]snapshotstore.Snapshot
}

func (s *lastSaved) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	if err := s.Memory.Save(ctx, snap, keep); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = make(map[[2]string]snapshotstore.Snapshot)
	}
	s.last[[2]string{snap.EntityType, snap.EntityID}] = snap
	return nil
}

func (s *lastSaved) Load(ctx context.Context, typ, id string) (snapshotstore.Snapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.last[[2]string{typ, id}]
	return snap, ok, nil
}

// ignoreKeep keeps every snapshot.
type ignoreKeep struct{ *snapshotstore.Memory }

func (s ignoreKeep) Save(ctx context.Context, snap snapshotstore.Snapshot, _ int) error {
	return s.Memory.Save(ctx, snap, 0)
}

// truncate stores at most 1 MiB, as a backend with a value size limit
// might without saying so.
type truncate struct{ *snapshotstore.Memory }

func (s truncate) Save(ctx context.Context, snap snapshotstore.Snapshot, keep int) error {
	if len(snap.Data) > 1<<20 {
		snap.Data = snap.Data[:1<<20]
	}
	return s.Memory.Save(ctx, snap, keep)
}

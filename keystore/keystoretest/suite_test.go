package keystoretest_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/keystore"
	"github.com/eventsourced-go/eventsourced/keystore/keystoretest"
)

// memory returns a fresh reference store, closed when the test ends.
func memory(t *testing.T) *keystore.Memory {
	m := keystore.NewMemory()
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// shared returns one reference store as both handles.
func shared(t *testing.T) keystoretest.Handles {
	m := memory(t)
	return keystoretest.Handles{A: m, B: m}
}

// TestCasesPassOnMemory checks the harness: every case passes against the
// reference store when run through the recorder.
func TestCasesPassOnMemory(t *testing.T) {
	conformancetest.CheckPass(t, keystoretest.Cases(), shared)
}

func TestCasesAreNamedAndStateRules(t *testing.T) {
	conformancetest.CheckCases(t, keystoretest.Cases())
}

// TestSuiteDetectsBrokenStores runs cases against stores that each break
// one rule and checks that the cases fail, saying which rule broke.
func TestSuiteDetectsBrokenStores(t *testing.T) {
	wrap := func(f func(*keystore.Memory) keystore.Store) func(t *testing.T) keystoretest.Handles {
		return func(t *testing.T) keystoretest.Handles {
			s := f(memory(t))
			return keystoretest.Handles{A: s, B: s}
		}
	}
	b := conformancetest.Break[keystoretest.Handles]
	conformancetest.CheckCaught(t, keystoretest.Cases(), []conformancetest.Broken[keystoretest.Handles]{
		b("HandlesDoNotShare", func(t *testing.T) keystoretest.Handles {
			return keystoretest.Handles{A: memory(t), B: memory(t)}
		}, "CreateReturnsSameKey", "GetAfterCreate", "ConcurrentCreate", "ForgetHidesKey"),
		b("ForgetKeepsKey", wrap(func(m *keystore.Memory) keystore.Store { return forgetNothing{m} }),
			"ForgetHidesKey", "NewKeyAfterForget", "SubjectsIsolated"),
		b("ForgetHidesButRestores", wrap(func(m *keystore.Memory) keystore.Store { return &restoreAfterForget{Memory: m} }),
			"NewKeyAfterForget"),
		b("ReturnsStoredMaterial", wrap(func(m *keystore.Memory) keystore.Store { return &aliasing{Memory: m} }),
			"KeysNotAliased"),
		b("FoldsCase", wrap(func(m *keystore.Memory) keystore.Store { return foldCase{m} }),
			"SubjectsIsolated"),
		b("TruncatesSubjects", wrap(func(m *keystore.Memory) keystore.Store { return truncate{m} }),
			"InvalidSubjects"),
		b("IgnoresCancel", wrap(func(m *keystore.Memory) keystore.Store { return ignoreCancel{m} }),
			"CanceledContext"),
		b("ShortKeys", wrap(func(m *keystore.Memory) keystore.Store { return shortKeys{m} }),
			"CreateReturnsSameKey", "GetAfterCreate"),
		b("OpenAfterClose", wrap(func(m *keystore.Memory) keystore.Store { return &closeNothing{Memory: m} }),
			"ClosedStore"),
	})
}

// forgetNothing does not forget.
type forgetNothing struct{ *keystore.Memory }

func (s forgetNothing) Forget(ctx context.Context, subject string) error {
	return keystore.ValidateSubject(subject)
}

// restoreAfterForget hides forgotten keys from Get but hands the old key
// out again on GetOrCreate, as a store that only marks keys deleted might.
type restoreAfterForget struct {
	*keystore.Memory

	// mu guards forgotten.
	mu        sync.Mutex
	forgotten map[string]keystore.Key
}

func (s *restoreAfterForget) Forget(ctx context.Context, subject string) error {
	k, found, err := s.Memory.Get(ctx, subject)
	if err != nil {
		return err
	}
	if found {
		s.mu.Lock()
		if s.forgotten == nil {
			s.forgotten = make(map[string]keystore.Key)
		}
		s.forgotten[subject] = k
		s.mu.Unlock()
	}
	return s.Memory.Forget(ctx, subject)
}

func (s *restoreAfterForget) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	s.mu.Lock()
	k, ok := s.forgotten[subject]
	delete(s.forgotten, subject)
	s.mu.Unlock()
	if !ok {
		return s.Memory.GetOrCreate(ctx, subject)
	}
	return k, nil
}

// aliasing hands every caller the same Material slice of a subject.
type aliasing struct {
	*keystore.Memory

	// mu guards keys.
	mu   sync.Mutex
	keys map[string]keystore.Key
}

func (s *aliasing) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[subject]; ok {
		return k, nil
	}
	k, err := s.Memory.GetOrCreate(ctx, subject)
	if err != nil {
		return k, err
	}
	if s.keys == nil {
		s.keys = make(map[string]keystore.Key)
	}
	s.keys[subject] = k
	return k, nil
}

func (s *aliasing) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	s.mu.Lock()
	k, ok := s.keys[subject]
	s.mu.Unlock()
	if ok {
		return k, true, nil
	}
	return s.Memory.Get(ctx, subject)
}

// foldCase treats subjects that differ only in case as one, as a backend
// with a case-insensitive collation or key encoding might.
type foldCase struct{ *keystore.Memory }

func fold(subject string) string {
	b := []byte(subject)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (s foldCase) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	return s.Memory.Get(ctx, fold(subject))
}

func (s foldCase) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	return s.Memory.GetOrCreate(ctx, fold(subject))
}

func (s foldCase) Forget(ctx context.Context, subject string) error {
	return s.Memory.Forget(ctx, fold(subject))
}

// truncate cuts subjects to MaxSubjectLen bytes instead of refusing them.
type truncate struct{ *keystore.Memory }

func cut(subject string) string {
	if len(subject) <= keystore.MaxSubjectLen {
		return subject
	}
	n := keystore.MaxSubjectLen
	for !utf8.RuneStart(subject[n]) {
		n--
	}
	return subject[:n]
}

func (s truncate) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	return s.Memory.Get(ctx, cut(subject))
}

func (s truncate) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	return s.Memory.GetOrCreate(ctx, cut(subject))
}

func (s truncate) Forget(ctx context.Context, subject string) error {
	return s.Memory.Forget(ctx, cut(subject))
}

// ignoreCancel carries on when the caller's ctx is canceled.
type ignoreCancel struct{ *keystore.Memory }

func (s ignoreCancel) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	return s.Memory.Get(context.WithoutCancel(ctx), subject)
}

func (s ignoreCancel) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	return s.Memory.GetOrCreate(context.WithoutCancel(ctx), subject)
}

func (s ignoreCancel) Forget(ctx context.Context, subject string) error {
	return s.Memory.Forget(context.WithoutCancel(ctx), subject)
}

// shortKeys returns AES-128-sized keys.
type shortKeys struct{ *keystore.Memory }

func (s shortKeys) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	k, err := s.Memory.GetOrCreate(ctx, subject)
	k.Material = slices.Clip(k.Material[:min(len(k.Material), 16)])
	return k, err
}

func (s shortKeys) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	k, found, err := s.Memory.Get(ctx, subject)
	k.Material = slices.Clip(k.Material[:min(len(k.Material), 16)])
	return k, found, err
}

// closeNothing reports success from Close and keeps working.
type closeNothing struct{ *keystore.Memory }

func (s *closeNothing) Close() error { return nil }

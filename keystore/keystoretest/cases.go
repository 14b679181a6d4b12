package keystoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
	"github.com/eventsourced-go/eventsourced/keystore"
)

// Cases returns the conformance cases, in the order [Run] runs them.
func Cases() []Case {
	c := conformancetest.New[Handles]
	return []Case{
		c("GetUnknown", "Get of a subject that never had a key returns found false, a zero Key and a nil error", getUnknown),
		c("CreateReturnsSameKey", "GetOrCreate gives a subject a key with a non-empty ID and KeySize bytes of material, and returns that same key to every later call, from every handle", createReturnsSameKey),
		c("GetAfterCreate", "Get finds the key GetOrCreate made, from every handle", getAfterCreate),
		c("ConcurrentCreate", "concurrent GetOrCreate calls for one subject, from two handles, all return the same key", concurrentCreate),
		c("SubjectsIsolated", "every subject has its own key, also subjects that differ only in case or in characters a backend escapes, and forgetting one leaves the others", subjectsIsolated),
		c("MaxLengthSubject", "a subject of MaxSubjectLen bytes of any UTF-8 works in every call", maxLengthSubject),
		c("ForgetHidesKey", "once Forget returns, Get reports the subject not found from every handle", forgetHidesKey),
		c("ForgetUnknown", "Forget of a subject without a key returns nil, also when repeated", forgetUnknown),
		c("NewKeyAfterForget", "GetOrCreate after Forget gives the subject a new key, with a different ID and different material, seen by every handle", newKeyAfterForget),
		c("InvalidSubjects", "an empty, over-long, non-UTF-8 or NUL-holding subject fails with ErrInvalid on every method before any I/O, and stores nothing", invalidSubjects),
		c("CanceledContext", "a call with a canceled ctx returns an error matching context.Canceled promptly, on every method", canceledContext),
		c("KeysNotAliased", "mutating the Material of a returned key does not change the stored key", keysNotAliased),
		c("ClosedStore", "after Close, every method returns ErrClosed (stores that implement Closer)", closedStore),
	}
}

// ruleFatalf reports a rule other than the running case's, such as one a
// helper checks, and ends the case.
var ruleFatalf = conformancetest.RuleFatalf

// handles names the two handles in messages.
var handles = [2]string{"a", "b"}

// both returns the two handles in the order [handles] names them.
func both(h Handles) [2]keystore.Store { return [2]keystore.Store{h.A, h.B} }

// mustGetOrCreate calls GetOrCreate and ends the case on an error or a
// malformed key.
func mustGetOrCreate(t TB, ctx context.Context, s keystore.Store, which, subject string) keystore.Key {
	t.Helper()
	k, err := s.GetOrCreate(ctx, subject)
	if err != nil {
		ruleFatalf(t, "GetOrCreate of a valid subject with a live ctx succeeds", "%s.GetOrCreate(%s): %v", which, quote(subject), err)
	}
	if k.ID == "" || len(k.Material) != keystore.KeySize {
		ruleFatalf(t, "a key has a non-empty ID and KeySize bytes of material",
			"%s.GetOrCreate(%s): ID %q with %d bytes of material, want a non-empty ID and %d bytes", which, quote(subject), k.ID, len(k.Material), keystore.KeySize)
	}
	return k
}

// mustGet calls Get and ends the case on an error.
func mustGet(t TB, ctx context.Context, s keystore.Store, which, subject string) (keystore.Key, bool) {
	t.Helper()
	k, found, err := s.Get(ctx, subject)
	if err != nil {
		ruleFatalf(t, "Get of a valid subject with a live ctx succeeds", "%s.Get(%s): %v", which, quote(subject), err)
	}
	return k, found
}

// mustForget calls Forget and ends the case on an error.
func mustForget(t TB, ctx context.Context, s keystore.Store, which, subject string) {
	t.Helper()
	if err := s.Forget(ctx, subject); err != nil {
		ruleFatalf(t, "Forget of a valid subject with a live ctx succeeds", "%s.Forget(%s): %v", which, quote(subject), err)
	}
}

// expectKey reports a broken rule of the case unless Get through both
// handles finds want, or finds nothing when want has no ID.
func expectKey(t *conformancetest.T, ctx context.Context, h Handles, subject string, want keystore.Key) {
	t.Helper()
	for i, s := range both(h) {
		got, found := mustGet(t, ctx, s, handles[i], subject)
		switch {
		case want.ID == "" && found:
			t.Errorf("%s.Get(%s): found key %s, want none", handles[i], quote(subject), got.ID)
		case want.ID == "":
		case !found:
			t.Errorf("%s.Get(%s): found none, want key %s", handles[i], quote(subject), want.ID)
		case !same(got, want):
			t.Errorf("%s.Get(%s): got %s, want %s", handles[i], quote(subject), describe(got), describe(want))
		}
	}
}

// same reports whether a and b are the same key.
func same(a, b keystore.Key) bool {
	return a.ID == b.ID && bytes.Equal(a.Material, b.Material)
}

// describe names a key in messages by its ID and a fingerprint of its
// material: enough to tell keys apart, not enough to leak one.
func describe(k keystore.Key) string {
	if len(k.Material) < 4 {
		return fmt.Sprintf("key %q with %d bytes of material", k.ID, len(k.Material))
	}
	return fmt.Sprintf("key %q with %d bytes of material %x…", k.ID, len(k.Material), k.Material[:4])
}

// quote formats a subject for messages, bounded in length.
func quote(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func getUnknown(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	for i, s := range both(h) {
		k, found, err := s.Get(ctx, n.ID("unknown"))
		if err != nil || found {
			t.Errorf("%s.Get: got found %v, err %v; want false, nil", handles[i], found, err)
		}
		if k.ID != "" || k.Material != nil {
			t.Errorf("%s.Get: got %s along with found false, want a zero Key", handles[i], describe(k))
		}
	}
}

func createReturnsSameKey(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	subject := n.ID("customer")
	first := mustGetOrCreate(t, ctx, h.A, "a", subject)
	if bytes.Equal(first.Material, make([]byte, keystore.KeySize)) {
		t.Errorf("a.GetOrCreate: the material is all zeros, want random bytes")
	}
	for i, s := range [...]keystore.Store{h.A, h.B, h.A, h.B} {
		if k := mustGetOrCreate(t, ctx, s, handles[i%2], subject); !same(k, first) {
			t.Errorf("call %d, %s.GetOrCreate: got %s, want the first call's %s", i+2, handles[i%2], describe(k), describe(first))
		}
	}
}

func getAfterCreate(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	for i, s := range both(h) {
		subject := n.ID("created_by_" + handles[i])
		k := mustGetOrCreate(t, ctx, s, handles[i], subject)
		expectKey(t, ctx, h, subject, k)
	}
}

func concurrentCreate(t *conformancetest.T, h Handles) {
	const callers = 16
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	for round := range 3 {
		subject := n.ID(fmt.Sprintf("contended_%d", round))
		keys := make([]keystore.Key, callers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range callers {
			wg.Go(func() {
				<-start
				s := both(h)[i%2]
				k, err := s.GetOrCreate(ctx, subject)
				if err != nil {
					t.Errorf("caller %d, %s.GetOrCreate(%s): %v", i, handles[i%2], quote(subject), err)
					return
				}
				keys[i] = k
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		for i, k := range keys[1:] {
			if !same(k, keys[0]) {
				t.Errorf("round %d: caller %d (%s) got %s, caller 0 (a) got %s", round, i+1, handles[(i+1)%2], describe(k), describe(keys[0]))
			}
		}
		expectKey(t, ctx, h, subject, keys[0])
	}
}

func subjectsIsolated(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	base := n.ID("user")
	// Pairs that a careless encoding (case folding, dropping or mapping
	// characters, an escape that is not itself escaped) would merge.
	subjects := []string{
		base, strings.ToUpper(base), base + "_", base + ".x", base + "=2Ex", base + "_x",
		base + "/x", base + " x", base + "@example.com", base + "é", base + "\u00e9x",
	}
	keys := make(map[string]keystore.Key, len(subjects))
	ids := make(map[string]string)
	for i, subject := range subjects {
		k := mustGetOrCreate(t, ctx, both(h)[i%2], handles[i%2], subject)
		if other, dup := ids[k.ID]; dup {
			t.Errorf("subjects %s and %s got the same key ID %s", quote(other), quote(subject), k.ID)
		}
		for other, ok := range keys {
			if bytes.Equal(ok.Material, k.Material) {
				t.Errorf("subjects %s and %s got the same material", quote(other), quote(subject))
			}
		}
		keys[subject], ids[k.ID] = k, subject
	}
	for _, subject := range subjects {
		expectKey(t, ctx, h, subject, keys[subject])
	}
	mustForget(t, ctx, h.A, "a", base+".x")
	for _, subject := range subjects {
		want := keys[subject]
		if subject == base+".x" {
			want = keystore.Key{}
		}
		expectKey(t, ctx, h, subject, want)
	}
}

func maxLengthSubject(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	for _, prefix := range []string{n.ID("max_a"), n.ID("max_b")} {
		subject := conformancetest.Fill(prefix, keystore.MaxSubjectLen)
		k := mustGetOrCreate(t, ctx, h.A, "a", subject)
		if again := mustGetOrCreate(t, ctx, h.B, "b", subject); !same(again, k) {
			t.Errorf("b.GetOrCreate of a %d-byte subject: got %s, want %s", len(subject), describe(again), describe(k))
		}
		expectKey(t, ctx, h, subject, k)
		mustForget(t, ctx, h.B, "b", subject)
		expectKey(t, ctx, h, subject, keystore.Key{})
	}
}

func forgetHidesKey(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	for i, s := range both(h) {
		subject := n.ID("forgotten_by_" + handles[i])
		other := n.ID("kept_" + handles[i])
		mustGetOrCreate(t, ctx, h.A, "a", subject)
		kept := mustGetOrCreate(t, ctx, h.B, "b", other)
		mustForget(t, ctx, s, handles[i], subject)
		expectKey(t, ctx, h, subject, keystore.Key{})
		expectKey(t, ctx, h, other, kept)
	}
}

func forgetUnknown(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	subject := n.ID("never_had_a_key")
	for i, s := range [...]keystore.Store{h.A, h.B, h.A} {
		if err := s.Forget(ctx, subject); err != nil {
			t.Errorf("Forget %d through %s: %v", i+1, handles[i%2], err)
		}
	}
	expectKey(t, ctx, h, subject, keystore.Key{})
}

func newKeyAfterForget(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	subject := n.ID("returning_customer")
	seen := []keystore.Key{mustGetOrCreate(t, ctx, h.A, "a", subject)}
	for round := range 3 {
		mustForget(t, ctx, both(h)[round%2], handles[round%2], subject)
		k := mustGetOrCreate(t, ctx, both(h)[(round+1)%2], handles[(round+1)%2], subject)
		for j, old := range seen {
			if k.ID == old.ID {
				t.Errorf("round %d: the new key has the ID %q of key %d, which was forgotten", round, k.ID, j)
			}
			if bytes.Equal(k.Material, old.Material) {
				t.Errorf("round %d: the new key %q has the material of key %d (%q), which was forgotten", round, k.ID, j, old.ID)
			}
		}
		seen = append(seen, k)
		expectKey(t, ctx, h, subject, k)
	}
}

func invalidSubjects(t *conformancetest.T, h Handles) {
	n := conformancetest.NewNames(t)
	// A canceled ctx: a store that did any I/O, or even looked at ctx,
	// before it checked the subject would report the cancellation instead.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, bad := range []struct{ what, subject string }{
		{"an empty subject", ""},
		{"a subject of MaxSubjectLen+1 bytes", conformancetest.Fill(n.ID("long"), keystore.MaxSubjectLen+1)},
		{"a subject that is not UTF-8", n.ID("bad\xffutf8")},
		{"a subject holding a NUL byte", n.ID("nul\x00byte")},
	} {
		check := func(call string, err error) {
			t.Helper()
			if !errors.Is(err, keystore.ErrInvalid) {
				t.Errorf("%s with %s: got %v, want an error matching ErrInvalid", call, bad.what, err)
				return
			}
			if len(err.Error()) > 400 {
				t.Errorf("%s with %s: a %d-byte message, want the subject quoted as a bounded prefix", call, bad.what, len(err.Error()))
			}
		}
		for i, s := range both(h) {
			_, found, err := s.Get(ctx, bad.subject)
			check(handles[i]+".Get", err)
			if found {
				t.Errorf("%s.Get with %s: found true along with the error", handles[i], bad.what)
			}
			k, err := s.GetOrCreate(ctx, bad.subject)
			check(handles[i]+".GetOrCreate", err)
			if k.ID != "" || k.Material != nil {
				t.Errorf("%s.GetOrCreate with %s: returned %s along with the error", handles[i], bad.what, describe(k))
			}
			check(handles[i]+".Forget", s.Forget(ctx, bad.subject))
		}
	}
	// With a live ctx too, a refused subject stores nothing: in particular
	// an over-long one is not cut to the limit and stored under its prefix.
	live := conformancetest.Context(t)
	long := conformancetest.Fill(n.ID("long"), keystore.MaxSubjectLen+1)
	if _, err := h.A.GetOrCreate(live, long); !errors.Is(err, keystore.ErrInvalid) {
		t.Errorf("a.GetOrCreate with a live ctx and a subject of MaxSubjectLen+1 bytes: got %v, want an error matching ErrInvalid", err)
	}
	cut := keystore.MaxSubjectLen
	for !utf8.RuneStart(long[cut]) {
		cut--
	}
	expectKey(t, live, h, long[:cut], keystore.Key{})
}

func canceledContext(t *conformancetest.T, h Handles) {
	live, n := conformancetest.Context(t), conformancetest.NewNames(t)
	existing := n.ID("existing")
	mustGetOrCreate(t, live, h.A, "a", existing)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	const limit = 10 * time.Second
	for i, s := range both(h) {
		for _, call := range []struct {
			name string
			fn   func() error
		}{
			{"Get of an existing subject", func() error { _, _, err := s.Get(ctx, existing); return err }},
			{"Get of an unknown subject", func() error { _, _, err := s.Get(ctx, n.ID("unknown")); return err }},
			{"GetOrCreate of an existing subject", func() error { _, err := s.GetOrCreate(ctx, existing); return err }},
			{"GetOrCreate of a new subject", func() error { _, err := s.GetOrCreate(ctx, n.ID("new")); return err }},
			{"Forget", func() error { return s.Forget(ctx, n.ID("other")) }},
		} {
			done := make(chan error, 1)
			go func() { done <- call.fn() }()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s.%s with a canceled ctx: got %v, want an error matching context.Canceled", handles[i], call.name, err)
				}
			case <-time.After(limit):
				t.Errorf("%s.%s with a canceled ctx: no return within %v", handles[i], call.name, limit)
			}
		}
	}
}

func keysNotAliased(t *conformancetest.T, h Handles) {
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	subject := n.ID("wiped_by_caller")
	created := mustGetOrCreate(t, ctx, h.A, "a", subject)
	want := keystore.Key{ID: created.ID, Material: bytes.Clone(created.Material)}
	clear(created.Material)
	expectKey(t, ctx, h, subject, want)

	again := mustGetOrCreate(t, ctx, h.A, "a", subject)
	for i := range again.Material {
		again.Material[i] ^= 0xff
	}
	got, _ := mustGet(t, ctx, h.A, "a", subject)
	clear(got.Material)
	expectKey(t, ctx, h, subject, want)
}

func closedStore(t *conformancetest.T, h Handles) {
	c, ok := h.A.(keystore.Closer)
	if !ok {
		t.Logf("%T does not implement keystore.Closer; nothing to check", h.A)
		return
	}
	ctx, n := conformancetest.Context(t), conformancetest.NewNames(t)
	subject := n.ID("before_close")
	mustGetOrCreate(t, ctx, h.A, "a", subject)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(call string, err error) {
		t.Helper()
		if !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("%s after Close: got %v, want an error matching ErrClosed", call, err)
		}
	}
	for _, subject := range []string{subject, n.ID("unknown")} {
		_, found, err := h.A.Get(ctx, subject)
		check("Get of "+quote(subject), err)
		if found {
			t.Errorf("Get of %s after Close: found true along with the error", quote(subject))
		}
		_, err = h.A.GetOrCreate(ctx, subject)
		check("GetOrCreate of "+quote(subject), err)
		check("Forget of "+quote(subject), h.A.Forget(ctx, subject))
	}
	check("a second Close", c.Close())
}

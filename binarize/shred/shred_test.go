package shred_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/binarize/shred"
	"github.com/eventsourced-go/eventsourced/keystore"
)

// Event is the event type of the tests.
type Event interface{ event() }

// Registered carries personal data of a customer: name, email and age.
type Registered struct {
	Customer string
	Name     string
	Email    string
	Age      int
	Plan     string
}

// Upgraded carries none.
type Upgraded struct {
	Customer string
	Plan     string
}

// Moved is a pointer event whose every field is personal.
type Moved struct {
	Customer string
	Address  string
}

func (Registered) event() {}
func (Upgraded) event()   {}
func (*Moved) event()     {}

// keys is a key store in memory that counts its calls and fails while down.
type keys struct {
	mu    sync.Mutex
	m     map[string]keystore.Key
	down  error
	calls map[string]int
}

func newKeys() *keys { return &keys{m: map[string]keystore.Key{}, calls: map[string]int{}} }

func (k *keys) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["Get"]++
	if k.down != nil {
		return keystore.Key{}, false, k.down
	}
	key, ok := k.m[subject]
	return key, ok, nil
}

func (k *keys) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["GetOrCreate"]++
	if k.down != nil {
		return keystore.Key{}, k.down
	}
	if key, ok := k.m[subject]; ok {
		return key, nil
	}
	key, err := keystore.NewKey()
	if err != nil {
		return key, err
	}
	k.m[subject] = key
	return key, nil
}

func (k *keys) Forget(ctx context.Context, subject string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls["Forget"]++
	if k.down != nil {
		return k.down
	}
	delete(k.m, subject)
	return nil
}

func (k *keys) setDown(err error) { k.mu.Lock(); k.down = err; k.mu.Unlock() }

func (k *keys) count(op string) int { k.mu.Lock(); defer k.mu.Unlock(); return k.calls[op] }

// codec returns an Events codec over a JSON registry where Registered's
// Name, Email and Age, and all of Moved, are personal.
func codec(t testing.TB, store keystore.Store, opts ...shred.Option) (*shred.Events[Event], *shred.Keys) {
	t.Helper()
	reg := binarize.NewRegistry[Event](binarize.JSON)
	binarize.MustRegister[Registered](reg, "Registered")
	binarize.MustRegister[Upgraded](reg, "Upgraded")
	binarize.MustRegister[*Moved](reg, "Moved")
	ks, err := shred.NewKeys(store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := shred.NewEvents[Event](reg, ks)
	if err != nil {
		t.Fatal(err)
	}
	shred.MustProtect(ev, func(e Registered) string { return e.Customer }, "Name", "Email", "Age")
	shred.MustProtect(ev, func(e *Moved) string { return e.Customer })
	return ev, ks
}

var ann = Registered{Customer: "c-1", Name: "Ann Example", Email: "ann@example.com", Age: 41, Plan: "gold"}

func roundTrip(t *testing.T, ev *shred.Events[Event], e Event) (Event, []byte) {
	t.Helper()
	name, rev, data, err := ev.Encode(e)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", e, err)
	}
	got, err := ev.Decode(name, rev, data)
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return got, data
}

func TestProtectedFieldsAreEncrypted(t *testing.T) {
	ev, _ := codec(t, newKeys())
	got, data := roundTrip(t, ev, ann)
	if got != ann {
		t.Fatalf("round trip: %+v, want %+v", got, ann)
	}
	for _, secret := range []string{"Ann Example", "ann@example.com", `"Age":41`} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("stored bytes hold %q in the clear: %q", secret, data)
		}
	}
	// The rest is readable by anyone, as the inner codec wrote it.
	for _, clear := range []string{`"Customer":"c-1"`, `"Plan":"gold"`} {
		if !bytes.Contains(data, []byte(clear)) {
			t.Errorf("stored bytes lack %s: %q", clear, data)
		}
	}
	// Two encodings of one event differ (random nonce).
	_, _, again, _ := ev.Encode(ann)
	if bytes.Equal(again, data) {
		t.Error("two encodings are equal: the nonce is not random")
	}

	moved := &Moved{Customer: "c-1", Address: "1 Main St"}
	got, data = roundTrip(t, ev, moved)
	if !reflect.DeepEqual(got, moved) || bytes.Contains(data, []byte("Main St")) || bytes.Contains(data, []byte("c-1\"")) {
		t.Fatalf("pointer event: got %+v from %q", got, data)
	}
	if moved.Address != "1 Main St" {
		t.Fatalf("Encode changed the caller's event: %+v", moved)
	}
}

func TestUnprotectedTypesPassThrough(t *testing.T) {
	store := newKeys()
	ev, _ := codec(t, store)
	reg := binarize.NewRegistry[Event](binarize.JSON)
	binarize.MustRegister[Upgraded](reg, "Upgraded")
	e := Upgraded{Customer: "c-1", Plan: "gold"}
	_, _, want, _ := reg.Encode(e)
	got, data := roundTrip(t, ev, e)
	if got != e || !bytes.Equal(data, want) {
		t.Fatalf("unprotected event: %+v as %q, want %q", got, data, want)
	}
	// Bytes written before Registered was protected still decode.
	plain, _ := binarize.JSON.Marshal(ann)
	old, err := ev.Decode("Registered", 0, plain)
	if err != nil || old != ann {
		t.Fatalf("plain bytes of a protected type: %+v, %v", old, err)
	}
	if n := store.count("GetOrCreate") + store.count("Get"); n != 0 {
		t.Fatalf("%d key store calls for data without personal fields, want 0", n)
	}
}

func TestForgetRedacts(t *testing.T) {
	store := newKeys()
	ev, ks := codec(t, store)
	bob := Registered{Customer: "c-2", Name: "Bob", Email: "bob@example.com", Age: 30, Plan: "free"}
	var annData, bobData, movedData []byte
	_, annData = roundTrip(t, ev, ann)
	_, bobData = roundTrip(t, ev, bob)
	_, movedData = roundTrip(t, ev, &Moved{Customer: "c-1", Address: "1 Main St"})

	if err := ks.Forget(context.Background(), "c-1"); err != nil {
		t.Fatal(err)
	}
	got, err := ev.Decode("Registered", 0, annData)
	want := Registered{Customer: "c-1", Name: shred.Redacted, Email: shred.Redacted, Age: 0, Plan: "gold"}
	if err != nil || got != want {
		t.Fatalf("forgotten subject: %+v, %v; want %+v", got, err, want)
	}
	m, err := ev.Decode("Moved", 0, movedData)
	if err != nil || !reflect.DeepEqual(m, &Moved{Customer: shred.Redacted, Address: shred.Redacted}) {
		t.Fatalf("forgotten subject, pointer event: %+v, %v", m, err)
	}
	if got, err := ev.Decode("Registered", 0, bobData); err != nil || got != bob {
		t.Fatalf("other subject after a forget: %+v, %v; want %+v", got, err, bob)
	}
	// The subject comes back with a new key; its old data stays redacted.
	_, newData := roundTrip(t, ev, ann)
	if got, _ := ev.Decode("Registered", 0, newData); got != ann {
		t.Fatalf("new data of a forgotten subject: %+v", got)
	}
	if got, _ := ev.Decode("Registered", 0, annData); got != want {
		t.Fatalf("old data of a forgotten subject after its new key: %+v, want %+v", got, want)
	}
}

func TestKeyStoreFailures(t *testing.T) {
	store := newKeys()
	ev, ks := codec(t, store, shred.WithCacheTTL(0))
	_, data := roundTrip(t, ev, ann)
	down := errors.New("key store down")
	store.setDown(down)

	_, _, _, err := ev.Encode(ann)
	if !errors.Is(err, down) || err.Error() != "shred: key of subject c-1: key store down" {
		t.Fatalf("Encode with the key store down: %v", err)
	}
	_, err = ev.Decode("Registered", 0, data)
	if !errors.Is(err, down) || errors.Is(err, binarize.ErrDecode) || err.Error() != "shred: key of subject c-1: key store down" {
		t.Fatalf("Decode with the key store down: %v; want the key store's error, not a DecodeError or redacted data", err)
	}
	if err := ks.Forget(context.Background(), "c-1"); !errors.Is(err, down) {
		t.Fatalf("Forget with the key store down: %v", err)
	}
	// Unprotected events need no key.
	if _, _, _, err := ev.Encode(Upgraded{Customer: "c-1"}); err != nil {
		t.Fatalf("Encode of an unprotected event with the key store down: %v", err)
	}
}

func TestTamperedBytesFail(t *testing.T) {
	ev, _ := codec(t, newKeys())
	name, rev, data, err := ev.Encode(ann)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte of the inner JSON ("gold" -> "gole"): the additional
	// data binds it to the ciphertext.
	i := bytes.Index(data, []byte("gold"))
	bad := bytes.Clone(data)
	bad[i+3] = 'e'
	if _, err := ev.Decode(name, rev, bad); err == nil || !strings.Contains(err.Error(), "fail authentication under key") {
		t.Fatalf("altered bytes: %v", err)
	}
	// The same bytes under another name.
	if _, err := ev.Decode("Moved", rev, data); err == nil {
		t.Fatal("bytes decoded under another event name")
	}
	for _, cut := range []int{5, 6, 20, 40} {
		if _, err := ev.Decode(name, rev, data[:cut]); err == nil {
			t.Fatalf("envelope cut at %d decoded", cut)
		}
	}
}

func TestKeysAreCached(t *testing.T) {
	store := newKeys()
	ev, ks := codec(t, store)
	var stored [][]byte
	for i := range 100 {
		e := ann
		e.Age = i
		_, _, data, err := ev.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, data)
	}
	if n := store.count("GetOrCreate"); n != 1 {
		t.Fatalf("100 events of one subject made %d GetOrCreate calls, want 1", n)
	}
	ks.Forget(context.Background(), "c-1")
	// A fresh process reads the forgotten subject's events: one Get, then
	// the dead key ID is remembered.
	ev2, _ := codec(t, store)
	for _, data := range stored {
		if got, err := ev2.Decode("Registered", 0, data); err != nil || got.(Registered).Name != shred.Redacted {
			t.Fatalf("forgotten: %+v, %v", got, err)
		}
	}
	if n := store.count("Get"); n != 1 {
		t.Fatalf("reading 100 events of a forgotten subject made %d Get calls, want 1", n)
	}
}

// TestForgetInAnotherProcess: a process that cached a key decrypts the
// subject's data for at most the cache TTL after another forgot it.
func TestForgetInAnotherProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newKeys()
		a, aKeys := codec(t, store, shred.WithCacheTTL(time.Minute))
		b, _ := codec(t, store, shred.WithCacheTTL(time.Minute))
		_, data := roundTrip(t, a, ann)
		if got, _ := b.Decode("Registered", 0, data); got != ann {
			t.Fatalf("b before the forget: %+v", got)
		}
		aKeys.Forget(context.Background(), "c-1")
		if got, _ := a.Decode("Registered", 0, data); got.(Registered).Name != shred.Redacted {
			t.Fatalf("a right after its forget: %+v", got)
		}
		time.Sleep(59 * time.Second)
		if got, _ := b.Decode("Registered", 0, data); got != ann {
			t.Fatalf("b within its TTL: %+v, want the cached key still used", got)
		}
		time.Sleep(2 * time.Second)
		if got, _ := b.Decode("Registered", 0, data); got.(Registered).Name != shred.Redacted {
			t.Fatalf("b after its TTL: %+v, want redacted", got)
		}
	})
}

func TestProtobufMessages(t *testing.T) {
	reg := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](reg, "Email")
	binarize.MustRegister[*wrapperspb.Int64Value](reg, "Count")
	ks, _ := shred.NewKeys(newKeys())
	ev, err := shred.NewEvents[proto.Message](reg, ks)
	if err != nil {
		t.Fatal(err)
	}
	shred.MustProtect(ev, func(*wrapperspb.StringValue) string { return "c-9" }, "Value")
	msg := wrapperspb.String("zed@example.com")
	name, rev, data, err := ev.Encode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("zed@")) || msg.Value != "zed@example.com" {
		t.Fatalf("protobuf: stored %q, caller's message now %v", data, msg)
	}
	got, err := ev.Decode(name, rev, data)
	if err != nil || !proto.Equal(got, msg) {
		t.Fatalf("protobuf round trip: %v, %v", got, err)
	}
	ks.Forget(context.Background(), "c-9")
	got, err = ev.Decode(name, rev, data)
	if err != nil || got.(*wrapperspb.StringValue).Value != shred.Redacted {
		t.Fatalf("protobuf after forget: %v, %v", got, err)
	}
}

func TestBadInput(t *testing.T) {
	reg := binarize.NewRegistry[Event](binarize.JSON)
	binarize.MustRegister[Registered](reg, "Registered")
	ks, _ := shred.NewKeys(newKeys())
	ev, _ := shred.NewEvents[Event](reg, ks)
	sub := func(e Registered) string { return e.Customer }
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"missing field", shred.Protect(ev, sub, "Phone"), `shred: invalid argument: Protect: shred_test.Registered has no field "Phone"`},
		{"twice", shred.Protect(ev, sub, "Name", "Name"), `shred: invalid argument: Protect: field "Name" of shred_test.Registered is named twice`},
		{"nil subject", shred.Protect[Registered](ev, nil), "shred: invalid argument: Protect shred_test.Registered: nil subject function"},
		{"not an event", shred.Protect(ev, func(string) string { return "" }), "shred: invalid argument: Protect string: not an event type of shred_test.Event"},
		{"unexported", shred.Protect(ev, func(e *unexported) string { return "" }, "secret"), `shred: invalid argument: Protect: field "secret" of *shred_test.unexported is not exported`},
		{"nil keys", func() error { _, err := shred.NewEvents[Event](reg, nil); return err }(), "shred: invalid argument: NewEvents with nil Keys"},
		{"nil store", func() error { _, err := shred.NewKeys(nil); return err }(), "shred: invalid argument: NewKeys with a nil key store"},
		{"ttl", func() error { _, err := shred.NewKeys(newKeys(), shred.WithCacheTTL(-1)); return err }(), "shred: invalid argument: WithCacheTTL(-1ns): must be >= 0"},
		{"forget empty", ks.Forget(context.Background(), ""), "shred: forget: keystore: invalid argument: empty subject"},
	}
	for _, tc := range cases {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("%s: %v\nwant %s", tc.name, tc.err, tc.want)
		}
	}
	if err := shred.Protect(ev, sub); err != nil {
		t.Fatal(err)
	}
	if err := shred.Protect(ev, sub); err == nil || err.Error() != "shred: invalid argument: Protect shred_test.Registered: already protected" {
		t.Fatalf("second Protect: %v", err)
	}
	_, _, _, err := ev.Encode(Registered{Name: "no customer"})
	if !errors.Is(err, shred.ErrNoSubject) || err.Error() != "shred: encode shred_test.Registered: shred: no subject" {
		t.Fatalf("event without a subject: %v", err)
	}
}

type unexported struct{ secret string }

func (*unexported) event() {}

// AccountV1 and Account are a state before and after a change of revision.
type (
	AccountV1 struct {
		Customer string
		Holder   string
	}
	Account struct {
		Customer string
		Holder   string
		Cents    int64
	}
)

func TestState(t *testing.T) {
	store := newKeys()
	ks, _ := shred.NewKeys(store)
	inner := binarize.NewVersioned[Account](binarize.Msgpack, 2)
	binarize.MustUpcastValue(inner, 1, func(old AccountV1) (Account, error) {
		return Account{Customer: old.Customer, Holder: old.Holder}, nil
	})
	state, err := shred.NewState(inner, ks, func(a Account) string { return a.Customer }, "Holder")
	if err != nil {
		t.Fatal(err)
	}
	if state.Revision() != 2 {
		t.Fatalf("Revision %d, want the inner codec's 2", state.Revision())
	}
	acct := Account{Customer: "c-1", Holder: "Ann Example", Cents: 500}
	data, err := state.Encode(acct)
	if err != nil || bytes.Contains(data, []byte("Ann Example")) {
		t.Fatalf("Encode: %q, %v", data, err)
	}
	if got, err := state.Decode(data); err != nil || got != acct {
		t.Fatalf("Decode: %+v, %v", got, err)
	}
	// A revision-1 snapshot protected by the release before.
	oldInner := binarize.NewVersioned[AccountV1](binarize.Msgpack, 1)
	oldState, _ := shred.NewState(oldInner, ks, func(a AccountV1) string { return a.Customer }, "Holder")
	oldData, err := oldState.Encode(AccountV1{Customer: "c-1", Holder: "Ann Example"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := state.DecodeRevision(1, oldData); err != nil || got != (Account{Customer: "c-1", Holder: "Ann Example"}) {
		t.Fatalf("revision 1 through the upcaster: %+v, %v", got, err)
	}
	ks.Forget(context.Background(), "c-1")
	if got, err := state.Decode(data); err != nil || got != (Account{Customer: "c-1", Holder: shred.Redacted, Cents: 500}) {
		t.Fatalf("after forget: %+v, %v", got, err)
	}
	if _, err := state.DecodeRevision(0, data); !errors.Is(err, binarize.ErrUnknownRevision) {
		t.Fatalf("unknown revision: %v", err)
	}
	_, err = shred.NewState(inner, ks, func(a Account) string { return a.Customer }, "Balance")
	if err == nil || err.Error() != `shred: invalid argument: NewState: shred_test.Account has no field "Balance"` {
		t.Fatalf("NewState with a missing field: %v", err)
	}
}

func ExampleEvents() {
	type Signed struct {
		Customer string
		Email    string
	}
	events := binarize.NewRegistry[Signed](binarize.JSON)
	binarize.MustRegister[Signed](events, "Signed")
	keys, _ := shred.NewKeys(keystore.NewMemory())
	codec, _ := shred.NewEvents[Signed](events, keys)
	shred.MustProtect(codec, func(e Signed) string { return e.Customer }, "Email")

	name, rev, data, _ := codec.Encode(Signed{Customer: "c-1", Email: "ann@example.com"})
	fmt.Println(bytes.Contains(data, []byte("ann@example.com")))
	e, _ := codec.Decode(name, rev, data)
	fmt.Println(e.Email)

	_ = keys.Forget(context.Background(), "c-1")
	e, _ = codec.Decode(name, rev, data)
	fmt.Println(e.Customer, e.Email)
	// Output:
	// false
	// ann@example.com
	// c-1 [redacted]
}

func TestStateWithoutSubject(t *testing.T) {
	ks, _ := shred.NewKeys(newKeys())
	state, _ := shred.NewState(binarize.NewVersioned[Account](binarize.Msgpack, 1), ks, func(a Account) string { return a.Customer }, "Holder")
	data, err := state.Encode(Account{Cents: 3})
	if err != nil {
		t.Fatalf("a state without subject or personal data: %v", err)
	}
	if got, err := state.Decode(data); err != nil || got != (Account{Cents: 3}) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	_, err = state.Encode(Account{Holder: "Ann"})
	if !errors.Is(err, shred.ErrNoSubject) || err.Error() != "shred: encode shred_test.Account: shred: no subject" {
		t.Fatalf("personal data without a subject: %v", err)
	}
}

package shredtest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/binarize/shred"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/keystore"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TypeName is the entity type of the scenario.
const TypeName = "Customer"

// Event is a customer event.
type Event interface{ customerEvent() }

// Registered and EmailChanged carry personal data; Upgraded does not.
type (
	Registered struct {
		Customer string
		Name     string
		Email    string
	}
	EmailChanged struct {
		Customer string
		Email    string
	}
	Upgraded struct{ Plan string }
)

func (Registered) customerEvent()   {}
func (EmailChanged) customerEvent() {}
func (Upgraded) customerEvent()     {}

// Customer is the state; Name and Email are personal in snapshots too.
type Customer struct {
	ID    string
	Name  string
	Email string
	Plan  string
}

// Register, ChangeEmail, Upgrade and Get are the commands.
type (
	Register    struct{ Name, Email string }
	ChangeEmail struct{ Email string }
	Upgrade     struct{ Plan string }
	Get         struct{}
)

// Handle implements entity.Command.
func (c Register) Handle(tx *entity.Tx[Customer, Event]) (Customer, error) {
	return tx.Persist(Registered{Customer: tx.ID(), Name: c.Name, Email: c.Email}), nil
}

// Handle implements entity.Command.
func (c ChangeEmail) Handle(tx *entity.Tx[Customer, Event]) (Customer, error) {
	return tx.Persist(EmailChanged{Customer: tx.ID(), Email: c.Email}), nil
}

// Handle implements entity.Command.
func (c Upgrade) Handle(tx *entity.Tx[Customer, Event]) (Customer, error) {
	return tx.Persist(Upgraded(c)), nil
}

// Handle implements entity.Command.
func (Get) Handle(tx *entity.Tx[Customer, Event]) (Customer, error) { return tx.State(), nil }

func apply(s Customer, e Event) Customer {
	switch e := e.(type) {
	case Registered:
		s.ID, s.Name, s.Email = e.Customer, e.Name, e.Email
	case EmailChanged:
		s.Email = e.Email
	case Upgraded:
		s.Plan = e.Plan
	}
	return s
}

// Codecs returns the entity type with its events and state protected by
// keys.
func Codecs(t testing.TB, keys *shred.Keys) (entity.Type[Customer, Event], *shred.Events[Event]) {
	t.Helper()
	reg := binarize.NewRegistry[Event](binarize.Msgpack)
	binarize.MustRegister[Registered](reg, "Registered")
	binarize.MustRegister[EmailChanged](reg, "EmailChanged")
	binarize.MustRegister[Upgraded](reg, "Upgraded")
	events, err := shred.NewEvents[Event](reg, keys)
	if err != nil {
		t.Fatal(err)
	}
	shred.MustProtect(events, func(e Registered) string { return e.Customer }, "Name", "Email")
	shred.MustProtect(events, func(e EmailChanged) string { return e.Customer }, "Email")
	state, err := shred.NewState(binarize.NewVersioned[Customer](binarize.Msgpack, 1), keys,
		func(c Customer) string { return c.ID }, "Name", "Email")
	if err != nil {
		t.Fatal(err)
	}
	return entity.Type[Customer, Event]{Name: TypeName, Apply: apply, Events: events, State: state}, events
}

// Backend is what a backend gives the scenario.
type Backend struct {
	Log       eventlog.Log
	Snapshots snapshotstore.Store
	Keys      keystore.Store
	// Raw returns every byte the backend stores for the log and the
	// snapshots, read beneath the Log and Store interfaces (the table or
	// the stream), to look for plaintext.
	Raw func(t *testing.T) []byte
}

// Personal data of the scenario's two customers.
var (
	ann = Customer{ID: "c-ann", Name: "Ann Example", Email: "ann.second@example.com", Plan: "gold"}
	bob = Customer{ID: "c-bob", Name: "Bob Example", Email: "bob.second@example.com", Plan: "gold"}
)

var plaintext = []string{"Ann Example", "ann.first@example.com", "ann.second@example.com", "Bob Example", "bob.first@example.com", "bob.second@example.com"}

// Run runs the scenario on the backend open makes.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	ctx := context.Background()
	b := open(t)

	// Release 1 writes both customers, with snapshots every 2 events.
	keys1, err := shred.NewKeys(b.Keys)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Codecs(t, keys1)
	sys := system(t, b)
	k, err := entity.Register(sys, def, entity.WithSnapshotEvery(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Customer{ann, bob} {
		ref := k.Ref(c.ID)
		first := map[string]string{ann.ID: "ann.first@example.com", bob.ID: "bob.first@example.com"}[c.ID]
		steps := []entity.Command[Customer, Event, Customer]{Register{Name: c.Name, Email: first}, ChangeEmail{Email: c.Email}, Upgrade{Plan: c.Plan}}
		for _, cmd := range steps {
			if _, err := entity.Ask(ctx, ref, cmd); err != nil {
				t.Fatalf("%s: %T: %v", c.ID, cmd, err)
			}
		}
	}
	shutdown(t, sys)

	t.Run("NoPlaintextStored", func(t *testing.T) {
		raw := b.Raw(t)
		if len(raw) == 0 {
			t.Fatal("the backend's raw bytes are empty")
		}
		for _, p := range plaintext {
			if bytes.Contains(raw, []byte(p)) {
				t.Errorf("the stored bytes hold %q in the clear", p)
			}
		}
		if !bytes.Contains(raw, []byte("gold")) {
			t.Error(`the stored bytes lack "gold": Raw does not read what was written`)
		}
		if n := snapshots(t, b); n != 2 {
			t.Errorf("%d snapshots stored, want 2: snapshots are part of the scenario", n)
		}
	})

	// Ann asks to be forgotten.
	if err := keys1.Forget(ctx, ann.ID); err != nil {
		t.Fatal(err)
	}
	redacted := Customer{ID: ann.ID, Name: shred.Redacted, Email: shred.Redacted, Plan: "gold"}

	t.Run("EntityRecoversRedacted", func(t *testing.T) {
		// A new process, with a cold key cache, from the snapshot and from
		// the events alone.
		for _, snapshots := range []bool{true, false} {
			keys2, _ := shred.NewKeys(b.Keys)
			def2, _ := Codecs(t, keys2)
			sys2 := system(t, b)
			var opts []entity.KindOption
			if snapshots {
				opts = append(opts, entity.WithSnapshotEvery(2))
			}
			k2, err := entity.Register(sys2, def2, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := entity.Ask(ctx, k2.Ref(ann.ID), Get{}); err != nil || got != redacted {
				t.Fatalf("forgotten customer (snapshots %v): %+v, %v; want %+v", snapshots, got, err, redacted)
			}
			if got, err := entity.Ask(ctx, k2.Ref(bob.ID), Get{}); err != nil || got != bob {
				t.Fatalf("other customer (snapshots %v): %+v, %v; want %+v", snapshots, got, err, bob)
			}
			shutdown(t, sys2)
		}
	})

	t.Run("ProjectionRebuiltRedacted", func(t *testing.T) {
		keys3, _ := shred.NewKeys(b.Keys)
		_, events := Codecs(t, keys3)
		got := rebuild(t, b.Log, events)
		want := map[string][2]string{ann.ID: {shred.Redacted, shred.Redacted}, bob.ID: {bob.Name, bob.Email}}
		if len(got) != 2 || got[ann.ID] != want[ann.ID] || got[bob.ID] != want[bob.ID] {
			t.Fatalf("read model %v, want %v", got, want)
		}
	})

	t.Run("KeyStoreFailureFailsCommand", func(t *testing.T) {
		down := &failing{Store: b.Keys}
		keys4, _ := shred.NewKeys(down)
		def4, _ := Codecs(t, keys4)
		sys4 := system(t, b)
		k4, err := entity.Register(sys4, def4, entity.WithSnapshotEvery(2))
		if err != nil {
			t.Fatal(err)
		}
		down.fail(true)
		// Reading needs the key too: recovery fails, and the snapshot is
		// not taken for unusable, which would replace it.
		_, err = entity.Ask(ctx, k4.Ref(bob.ID), Get{})
		if !errors.Is(err, errDown) || !errors.Is(err, entity.ErrRecovery) || errors.Is(err, entity.ErrUnusableSnapshot) {
			t.Fatalf("recovery with the key store down: %v; want a RecoveryError with its error, the snapshot kept", err)
		}
		_, err = entity.Ask(ctx, k4.Ref("c-cy"), Register{Name: "Cy Example", Email: "cy@example.com"})
		if !errors.Is(err, errDown) {
			t.Fatalf("Register with the key store down: %v; want its error", err)
		}
		const want = "entity: encode event shredtest.Registered of Customer/c-cy at seq 1: shred: key of subject c-cy: key store down"
		if err.Error() != want {
			t.Fatalf("error\n got %s\nwant %s", err, want)
		}
		if last, err := b.Log.LastSeq(ctx, TypeName, "c-cy"); err != nil || last != 0 {
			t.Fatalf("LastSeq of c-cy %d, %v; want 0: nothing persisted", last, err)
		}
		down.fail(false)
		if got, err := entity.Ask(ctx, k4.Ref("c-cy"), Register{Name: "Cy Example", Email: "cy@example.com"}); err != nil || got.Name != "Cy Example" {
			t.Fatalf("Register once the key store is back: %+v, %v", got, err)
		}
		if got, err := entity.Ask(ctx, k4.Ref(bob.ID), Get{}); err != nil || got != bob {
			t.Fatalf("recovery once the key store is back: %+v, %v; want %+v", got, err, bob)
		}
		shutdown(t, sys4)
	})
}

func system(t *testing.T, b Backend) *entity.System {
	t.Helper()
	sys, err := entity.NewSystem(b.Log, entity.WithSnapshotStore(b.Snapshots), entity.WithoutTelemetry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}

func shutdown(t *testing.T, sys *entity.System) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sys.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func snapshots(t *testing.T, b Backend) int {
	t.Helper()
	n := 0
	for _, id := range []string{ann.ID, bob.ID} {
		if _, found, err := b.Snapshots.Load(context.Background(), TypeName, id); err != nil {
			t.Fatal(err)
		} else if found {
			n++
		}
	}
	return n
}

// rebuild runs a projection from the start of the log into a read model
// of each customer's name and email.
func rebuild(t *testing.T, log eventlog.Log, events *shred.Events[Event]) map[string][2]string {
	t.Helper()
	var mu sync.Mutex
	model := map[string][2]string{}
	seen := 0
	h := projection.PerEvent(func(ctx context.Context, rec eventlog.Record) error {
		e, err := events.DecodeContext(ctx, rec.Name, rec.Revision, rec.Data)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		row := model[rec.EntityID]
		switch e := e.(type) {
		case Registered:
			row = [2]string{e.Name, e.Email}
		case EmailChanged:
			row[1] = e.Email
		}
		model[rec.EntityID] = row
		return nil
	})
	p, err := projection.New(log, TypeName, "customers", projection.NewMemory(), h)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p.Start(ctx)
	defer p.Stop(ctx)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := seen
		mu.Unlock()
		if n >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the projection handled %d events in 20 s, want 6; status %+v", n, p.Status())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return model
}

var errDown = errors.New("key store down")

// failing is a key store that fails while told to.
type failing struct {
	keystore.Store
	mu   sync.Mutex
	down bool
}

func (f *failing) fail(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *failing) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	return nil
}

// Get implements keystore.Store.
func (f *failing) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	if err := f.err(); err != nil {
		return keystore.Key{}, false, err
	}
	return f.Store.Get(ctx, subject)
}

// GetOrCreate implements keystore.Store.
func (f *failing) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	if err := f.err(); err != nil {
		return keystore.Key{}, err
	}
	return f.Store.GetOrCreate(ctx, subject)
}

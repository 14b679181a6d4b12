package entitytest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/entity/entitytest"
)

type Tally struct{ Total int }

type Event interface{ tallyEvent() }

type Added struct{ N int }

// Lossy has a field its JSON codec drops: entitytest must notice.
type Lossy struct {
	Kept    int
	dropped int
}

func (Added) tallyEvent() {}
func (Lossy) tallyEvent() {}

var errZero = errors.New("zero")

type Add struct{ N int }

func (c Add) Handle(tx *entity.Tx[Tally, Event]) (int, error) {
	if c.N == 0 {
		return 0, errZero
	}
	return tx.Persist(Added{c.N}).Total, nil
}

type AddLossy struct{}

func (AddLossy) Handle(tx *entity.Tx[Tally, Event]) (int, error) {
	tx.Persist(Lossy{Kept: 1, dropped: 2})
	return 0, nil
}

type Explode struct{}

func (Explode) Handle(*entity.Tx[Tally, Event]) (int, error) { panic("kaboom") }

func tallyType() entity.Type[Tally, Event] {
	r := binarize.NewRegistry[Event](binarize.JSON)
	binarize.MustRegister[Added](r, "Added")
	binarize.MustRegister[Lossy](r, "Lossy")
	return entity.Type[Tally, Event]{
		Name: "Tally",
		Apply: func(s Tally, e Event) Tally {
			if a, ok := e.(Added); ok {
				s.Total += a.N
			}
			return s
		},
		Events: r,
		State:  binarize.Value[Tally](binarize.JSON),
	}
}

func TestGivenWhenThen(t *testing.T) {
	f := entitytest.New(t, tallyType(), "t1").Given(Added{2}, Added{3})
	entitytest.When(f, Add{N: 4}).ThenEvents(Added{4}).ThenReply(9).ThenState(Tally{9})
	entitytest.When(f, Add{N: 0}).ThenError(errZero).ThenState(Tally{9})
	entitytest.When(f, Explode{}).ThenPanic()
	if f.Seq() != 3 || f.State().Total != 9 {
		t.Errorf("fixture at seq %d state %+v, want seq 3 total 9", f.Seq(), f.State())
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex // guards msgs
	msgs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(r)
}

// failures runs f against a recorder and returns what it reported.
func failures(t *testing.T, f func(tb testing.TB)) []string {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil && v != r {
				panic(v)
			}
		}()
		f(r)
	}()
	return r.msgs
}

func TestThenReportsMismatches(t *testing.T) {
	cases := []struct {
		name string
		run  func(tb testing.TB)
		want string
	}{
		{"wrong events", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), Add{N: 1}).ThenEvents(Added{2})
		}, "events\n got entitytest_test.Added{N:1}\nwant entitytest_test.Added{N:2}"},
		{"wrong reply", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), Add{N: 1}).ThenReply(5)
		}, "reply\n got 1\nwant 5"},
		{"error expected", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), Add{N: 1}).ThenError(errZero)
		}, "want error zero, got success"},
		{"events expected, got error", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), Add{N: 0}).ThenEvents(Added{0})
		}, "got error zero"},
		{"no events expected", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), Add{N: 1}).ThenNoEvents()
		}, "want (none)"},
		{"lossy codec", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), AddLossy{})
		}, "event entitytest_test.Lossy does not survive its codec"},
		{"wrong state", func(tb testing.TB) {
			entitytest.When(entitytest.New(tb, tallyType(), "x"), Add{N: 1}).ThenState(Tally{7})
		}, "state\n got entitytest_test.Tally{Total:1}\nwant entitytest_test.Tally{Total:7}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs := failures(t, tc.run)
			if len(msgs) != 1 || !strings.Contains(msgs[0], tc.want) {
				t.Errorf("reported %q, want one failure containing %q", msgs, tc.want)
			}
		})
	}
}

// TallyV1 is an older release's state: the total in tens.
type TallyV1 struct{ Tens int }

func versionedTally() entity.Type[Tally, Event] {
	def := tallyType()
	state := binarize.NewVersioned[Tally](binarize.JSON, 2)
	binarize.MustUpcastValue(state, 1, func(old TallyV1) (Tally, error) {
		return Tally{Total: old.Tens * 10}, nil
	})
	def.State = state
	return def
}

func TestGivenSnapshotTestsAStateUpcaster(t *testing.T) {
	old, err := binarize.JSON.Marshal(TallyV1{Tens: 4})
	if err != nil {
		t.Fatal(err)
	}
	f := entitytest.New(t, versionedTally(), "t1").GivenSnapshot(7, 1, old).Given(Added{2})
	if f.Seq() != 8 || f.State().Total != 42 {
		t.Fatalf("after a revision-1 snapshot at seq 7 and one event: seq %d, state %+v; want 8, {Total:42}", f.Seq(), f.State())
	}
	entitytest.When(f, Add{N: 1}).ThenReply(43).ThenState(Tally{Total: 43})

	current, _ := binarize.JSON.Marshal(Tally{Total: 5})
	if got := entitytest.New(t, versionedTally(), "t2").GivenSnapshot(1, 2, current).State(); got.Total != 5 {
		t.Fatalf("current-revision snapshot: state %+v, want {Total:5}", got)
	}
}

func TestGivenSnapshotReportsUnreadableSnapshots(t *testing.T) {
	old, _ := binarize.JSON.Marshal(TallyV1{Tens: 4})
	cases := []struct {
		name string
		run  func(tb testing.TB)
		want string
	}{
		{"no upcaster", func(tb testing.TB) {
			entitytest.New(tb, versionedTally(), "x").GivenSnapshot(3, 0, old)
		}, "entitytest: snapshot of Tally/x at seq 3, revision 0: binarize: unknown revision: entitytest_test.Tally rev 0 is older than the current revision and no upcaster is registered for it (current revision 2; upcast revisions [1])"},
		{"plain codec, other revision", func(tb testing.TB) {
			entitytest.New(tb, tallyType(), "x").GivenSnapshot(3, 1, old)
		}, "entitytest: snapshot of Tally/x at seq 3, revision 1: binarize: unknown revision: state of Tally rev 1: the State codec reads only revision 0 (StateRevision); make State a binarize.Versioned with an upcaster of revision 1 to read it"},
		{"bad bytes", func(tb testing.TB) {
			entitytest.New(tb, versionedTally(), "x").GivenSnapshot(3, 2, []byte("{"))
		}, `entitytest: snapshot of Tally/x at seq 3, revision 2: binarize: decode "entitytest_test.Tally" rev 2 (1 bytes): json: unexpected end of JSON input`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := failures(t, tc.run)
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("reported %q\nwant [%q]", got, tc.want)
			}
		})
	}
}

package binarize_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var errNegative = errors.New("negative amount")

// newUpcastingEvents returns the test registry with the history of
// "Deposited": revision 0 was named "MoneyIn" and counted euros with a memo,
// revision 1 counted a whole amount, revision 2 (current) counts cents.
func newUpcastingEvents(t testing.TB, f binarize.Format) *binarize.Registry[Event] {
	t.Helper()
	r := newEvents(t, f)
	if err := binarize.Upcast(r, "Deposited", 1, func(old DepositedV1) (Event, error) {
		if old.Amount < 0 {
			return nil, errNegative
		}
		return Deposited{Cents: int64(old.Amount) * 100}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := binarize.Upcast(r, "MoneyIn", 0, func(old MoneyIn) (Event, error) {
		return Deposited{Cents: int64(old.Euros) * 100, Note: old.Memo}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUpcast(t *testing.T) {
	for _, f := range []binarize.Format{binarize.JSON, binarize.Msgpack} {
		r := newUpcastingEvents(t, f)
		tests := []struct {
			name     string
			revision uint32
			old      any // written by an older program, in the old shape
			want     Event
		}{
			{"Deposited", 1, DepositedV1{Amount: 42}, Deposited{Cents: 4200}},
			{"Deposited", 1, DepositedV1{}, Deposited{}},
			{"MoneyIn", 0, MoneyIn{Euros: 3, Memo: "rent"}, Deposited{Cents: 300, Note: "rent"}},
			{"Deposited", 2, Deposited{Cents: 5}, Deposited{Cents: 5}},
		}
		for _, tc := range tests {
			t.Run(f.Name()+"/"+tc.name, func(t *testing.T) {
				data, err := f.Marshal(tc.old)
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.Decode(tc.name, tc.revision, data)
				if err != nil {
					t.Fatalf("Decode(%q, %d, %q): %v", tc.name, tc.revision, data, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Decode(%q, %d, %q) = %#v, want %#v", tc.name, tc.revision, data, got, tc.want)
				}
				// An upcast event is written back at its current name and revision.
				name, rev, _, err := r.Encode(got)
				if err != nil || name != "Deposited" || rev != 2 {
					t.Errorf("Encode(upcast event) = %q, %d, %v; want \"Deposited\", 2, <nil>", name, rev, err)
				}
			})
		}
	}
}

// TestUpcastOldShapeWithoutUpcaster shows why revisions exist: bytes of the
// old shape decode into the current type without error, and wrongly.
func TestUpcastOldShapeWithoutUpcaster(t *testing.T) {
	r := newEvents(t, binarize.JSON)
	got, err := r.Decode("Deposited", 2, []byte(`{"amount":42}`))
	if err != nil || got != (Deposited{}) {
		t.Errorf("Decode(old shape as current revision) = %#v, %v; want the zero Deposited, <nil>", got, err)
	}
	_, err = r.Decode("Deposited", 1, []byte(`{"amount":42}`))
	if want := `binarize: unknown event "Deposited" rev 1 (current revision 2)`; err == nil || err.Error() != want {
		t.Errorf("Decode(rev 1) without an upcaster: error = %v, want %q", err, want)
	}
}

func TestUpcastDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		revision uint32
		data     string
		wantIs   []error
		want     string
	}{
		{"Deposited", 1, `{"amount":-1}`, []error{binarize.ErrDecode, errNegative},
			`binarize: decode "Deposited" rev 1 (13 bytes): upcast from binarize_test.DepositedV1: negative amount`},
		{"Deposited", 1, `{"amount":"x"}`, []error{binarize.ErrDecode},
			`binarize: decode "Deposited" rev 1 (14 bytes): json: cannot unmarshal string into Go struct field DepositedV1.amount of type int`},
		{"Deposited", 0, `{}`, []error{binarize.ErrUnknownEvent},
			`binarize: unknown event "Deposited" rev 0 (current revision 2; upcast revisions [1])`},
		{"Deposited", 7, `{}`, []error{binarize.ErrUnknownEvent},
			`binarize: unknown event "Deposited" rev 7 (current revision 2; upcast revisions [1])`},
		{"MoneyIn", 1, `{}`, []error{binarize.ErrUnknownEvent},
			`binarize: unknown event "MoneyIn" rev 1 (no current type; upcast revisions [0])`},
	}
	r := newUpcastingEvents(t, binarize.JSON)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Decode(tc.name, tc.revision, []byte(tc.data))
			for _, target := range tc.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("Decode(%q, %d, %q) error = %v, want it to match %v", tc.name, tc.revision, tc.data, err, target)
				}
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("Decode(%q, %d, %q) error =\n%v, want\n%s", tc.name, tc.revision, tc.data, err, tc.want)
			}
		})
	}
}

func TestUpcastFunctionFailures(t *testing.T) {
	r := binarize.NewRegistry[Event](binarize.JSON)
	binarize.MustRegister[Deposited](r, "Deposited", binarize.Revision(3))
	binarize.MustUpcast(r, "Deposited", 0, func(old DepositedV1) (Event, error) { panic("upcaster exploded") })
	binarize.MustUpcast(r, "Deposited", 1, func(old DepositedV1) (Event, error) { return nil, nil })
	sentinel := errors.New("sentinel")
	binarize.MustUpcast(r, "Deposited", 2, func(old DepositedV1) (Event, error) { panic(sentinel) })
	tests := []struct {
		revision uint32
		want     string
	}{
		{0, `binarize: decode "Deposited" rev 0 (2 bytes): upcast from binarize_test.DepositedV1: panic: upcaster exploded`},
		{1, `binarize: decode "Deposited" rev 1 (2 bytes): upcast from binarize_test.DepositedV1: returned nil`},
		{2, `binarize: decode "Deposited" rev 2 (2 bytes): upcast from binarize_test.DepositedV1: panic: sentinel`},
	}
	for _, tc := range tests {
		e, err := r.Decode("Deposited", tc.revision, []byte(`{}`))
		if !errors.Is(err, binarize.ErrDecode) || err.Error() != tc.want {
			t.Errorf("Decode(rev %d) = %v, %v; want error %q", tc.revision, e, err, tc.want)
		}
	}
	if _, err := r.Decode("Deposited", 2, []byte(`{}`)); !errors.Is(err, sentinel) {
		t.Errorf("Decode(rev 2) error = %v, want it to wrap the error the upcaster panicked with", err)
	}
}

// TestUpcastFromMap shows an upcaster reading an old shape it has no type
// for, as a generic map.
func TestUpcastFromMap(t *testing.T) {
	for _, f := range []binarize.Format{binarize.JSON, binarize.Msgpack} {
		t.Run(f.Name(), func(t *testing.T) {
			r := binarize.NewRegistry[Event](f)
			binarize.MustRegister[Opened](r, "Opened", binarize.Revision(1))
			binarize.MustUpcast(r, "Opened", 0, func(old map[string]any) (Event, error) {
				id, _ := old["id"].(string)
				holder, _ := old["holder"].(string)
				return Opened{ID: id, Owner: holder}, nil
			})
			data, err := f.Marshal(map[string]any{"id": "acc-9", "holder": "Grace", "limit": 100})
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Decode("Opened", 0, data)
			if want := (Opened{ID: "acc-9", Owner: "Grace"}); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Decode(rev 0) = %#v, %v; want %#v, <nil>", got, err, want)
			}
		})
	}
}

func TestUpcastProtobuf(t *testing.T) {
	r := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](r, "Name", binarize.Revision(1))
	// Revision 0 stored the name as bytes.
	binarize.MustUpcast(r, "Name", 0, func(old *wrapperspb.BytesValue) (proto.Message, error) {
		return wrapperspb.String(strings.ToUpper(string(old.GetValue()))), nil
	})
	data, err := proto.Marshal(wrapperspb.Bytes([]byte("ada")))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Decode("Name", 0, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := wrapperspb.String("ADA"); !proto.Equal(got, want) {
		t.Errorf("Decode(rev 0) = %v, want %v", got, want)
	}
}

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

func TestRegistrationErrors(t *testing.T) {
	upcastDeposit := func(old DepositedV1) (Event, error) { return Deposited{}, nil }
	tests := []struct {
		name   string
		do     func(r *binarize.Registry[Event]) error
		wantIs error
		want   []string // substrings of the error, naming the bad thing
	}{
		{"empty name", func(r *binarize.Registry[Event]) error {
			return binarize.Register[unregistered](r, "")
		}, binarize.ErrInvalid, []string{"binarize: invalid registration: Register binarize_test.unregistered: empty name"}},
		{"name already registered", func(r *binarize.Registry[Event]) error {
			return binarize.Register[unregistered](r, "Opened")
		}, binarize.ErrDuplicate, []string{`name "Opened" is already registered for binarize_test.Opened`, "binarize_test.unregistered"}},
		{"type already registered", func(r *binarize.Registry[Event]) error {
			return binarize.Register[Opened](r, "OpenedAgain")
		}, binarize.ErrDuplicate, []string{`Register "OpenedAgain": type binarize_test.Opened is already registered as "Opened"`}},
		{"pointer type already registered", func(r *binarize.Registry[Event]) error {
			return binarize.Register[*Closed](r, "Closed2")
		}, binarize.ErrDuplicate, []string{`type *binarize_test.Closed is already registered as "Closed"`}},
		{"type does not implement E", func(r *binarize.Registry[Event]) error {
			return binarize.Register[Account](r, "Account")
		}, binarize.ErrInvalid, []string{`Register "Account": binarize_test.Account does not implement binarize_test.Event`}},
		{"value of a type whose pointer implements E", func(r *binarize.Registry[Event]) error {
			return binarize.Register[Closed](r, "ClosedValue")
		}, binarize.ErrInvalid, []string{`binarize_test.Closed does not implement binarize_test.Event`}},
		{"interface type", func(r *binarize.Registry[Event]) error {
			return binarize.Register[Event](r, "Event")
		}, binarize.ErrInvalid, []string{`Register "Event": binarize_test.Event is an interface type`}},
		{"revision equal to an upcaster's", func(r *binarize.Registry[Event]) error {
			if err := binarize.Upcast(r, "Later", 3, upcastDeposit); err != nil {
				return err
			}
			return binarize.Register[unregistered](r, "Later", binarize.Revision(3))
		}, binarize.ErrDuplicate, []string{`Register "Later" rev 3: an upcaster is registered for that revision`}},
		{"revision lower than an upcaster's", func(r *binarize.Registry[Event]) error {
			if err := binarize.Upcast(r, "Later", 3, upcastDeposit); err != nil {
				return err
			}
			return binarize.Register[unregistered](r, "Later", binarize.Revision(2))
		}, binarize.ErrInvalid, []string{`Register "Later" rev 2: not higher than upcast revision 3`}},
		{"upcast empty name", func(r *binarize.Registry[Event]) error {
			return binarize.Upcast(r, "", 0, upcastDeposit)
		}, binarize.ErrInvalid, []string{"Upcast binarize_test.DepositedV1: empty name"}},
		{"upcast nil function", func(r *binarize.Registry[Event]) error {
			return binarize.Upcast[DepositedV1](r, "Deposited", 0, nil)
		}, binarize.ErrInvalid, []string{`Upcast "Deposited" rev 0: nil function`}},
		{"upcast the current revision", func(r *binarize.Registry[Event]) error {
			return binarize.Upcast(r, "Deposited", 2, upcastDeposit)
		}, binarize.ErrDuplicate, []string{`Upcast "Deposited" rev 2: that is the current revision of binarize_test.Deposited`}},
		{"upcast a revision above the current", func(r *binarize.Registry[Event]) error {
			return binarize.Upcast(r, "Deposited", 5, upcastDeposit)
		}, binarize.ErrInvalid, []string{`Upcast "Deposited" rev 5: not lower than the current revision 2`}},
		{"upcast a revision twice", func(r *binarize.Registry[Event]) error {
			if err := binarize.Upcast(r, "Deposited", 1, upcastDeposit); err != nil {
				return err
			}
			return binarize.Upcast(r, "Deposited", 1, upcastDeposit)
		}, binarize.ErrDuplicate, []string{`Upcast "Deposited" rev 1: an upcaster is already registered`}},
		{"upcast an old name twice", func(r *binarize.Registry[Event]) error {
			if err := binarize.Upcast(r, "MoneyIn", 0, upcastDeposit); err != nil {
				return err
			}
			return binarize.Upcast(r, "MoneyIn", 0, upcastDeposit)
		}, binarize.ErrDuplicate, []string{`Upcast "MoneyIn" rev 0: an upcaster is already registered`}},
		{"upcast from an interface type", func(r *binarize.Registry[Event]) error {
			return binarize.Upcast(r, "Deposited", 0, func(old Event) (Event, error) { return old, nil })
		}, binarize.ErrInvalid, []string{`Upcast "Deposited" rev 0: cannot decode into interface type binarize_test.Event`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newEvents(t, binarize.JSON)
			names := r.Names()
			err := tc.do(r)
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("error = %v, want %v", err, tc.wantIs)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error = %q, want it to contain %q", err, want)
				}
			}
			if other := map[error]error{binarize.ErrInvalid: binarize.ErrDuplicate, binarize.ErrDuplicate: binarize.ErrInvalid}[tc.wantIs]; errors.Is(err, other) {
				t.Errorf("error = %v matches %v too", err, other)
			}
			if got := r.Names(); !reflect.DeepEqual(got, names) {
				t.Errorf("Names() after a failed registration = %q, want %q", got, names)
			}
		})
	}
}

func TestRegistrationErrorsOtherEventTypes(t *testing.T) {
	tests := []struct {
		name   string
		do     func() error
		wantIs error
		want   string
	}{
		{"concrete E: another type", func() error {
			r := binarize.NewRegistry[Deposited](binarize.JSON)
			return binarize.Register[Opened](r, "Opened")
		}, binarize.ErrInvalid, `Register "Opened": binarize_test.Opened is not the event type binarize_test.Deposited`},
		{"E any: interface T", func() error {
			r := binarize.NewRegistry[any](binarize.JSON)
			return binarize.Register[any](r, "Any")
		}, binarize.ErrInvalid, `Register "Any": interface {} is an interface type`},
		{"protobuf: not a message", func() error {
			r := binarize.NewRegistry[any](binarize.Protobuf)
			return binarize.Register[Opened](r, "Opened")
		}, binarize.ErrInvalid, `Register "Opened": protobuf cannot encode binarize_test.Opened: not a pointer to a proto message`},
		{"protobuf: message by value", func() error {
			r := binarize.NewRegistry[any](binarize.Protobuf)
			return binarize.Register[wrapperspb.StringValue](r, "StringValue")
		}, binarize.ErrInvalid, `protobuf cannot encode wrapperspb.StringValue`},
		{"protobuf: upcast from a non-message", func() error {
			r := binarize.NewRegistry[proto.Message](binarize.Protobuf)
			return binarize.Upcast(r, "Old", 0, func(old MoneyIn) (proto.Message, error) { return nil, nil })
		}, binarize.ErrInvalid, `Upcast "Old" rev 0: protobuf cannot encode binarize_test.MoneyIn`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.wantIs) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want %v containing %q", err, tc.wantIs, tc.want)
			}
		})
	}

	// A concrete E registers itself.
	r := binarize.NewRegistry[Deposited](binarize.JSON)
	if err := binarize.Register[Deposited](r, "Deposited"); err != nil {
		t.Fatalf("Register[Deposited] in a registry of Deposited: %v", err)
	}
	name, _, data, err := r.Encode(Deposited{Cents: 9})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Decode(name, 0, data); err != nil || got != (Deposited{Cents: 9}) {
		t.Errorf("Decode(Encode(Deposited{9})) = %v, %v", got, err)
	}
}

func TestMustPanics(t *testing.T) {
	tests := []struct {
		name   string
		do     func(r *binarize.Registry[Event])
		wantIs error
	}{
		{"MustRegister", func(r *binarize.Registry[Event]) { binarize.MustRegister[Opened](r, "") }, binarize.ErrInvalid},
		{"MustUpcast", func(r *binarize.Registry[Event]) {
			binarize.MustUpcast(r, "Deposited", 2, func(old DepositedV1) (Event, error) { return nil, nil })
		}, binarize.ErrDuplicate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				err, _ := recover().(error)
				if !errors.Is(err, tc.wantIs) {
					t.Errorf("panic value = %v, want an error matching %v", err, tc.wantIs)
				}
			}()
			tc.do(newEvents(t, binarize.JSON))
		})
	}
}

func TestNilFormatPanics(t *testing.T) {
	for name, do := range map[string]func(){
		"NewRegistry": func() { binarize.NewRegistry[Event](nil) },
		"Value":       func() { binarize.Value[Account](nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if got, want := recover(), "binarize: "+name+": nil Format"; got != want {
					t.Errorf("panic value = %v, want %q", got, want)
				}
			}()
			do()
		})
	}
}

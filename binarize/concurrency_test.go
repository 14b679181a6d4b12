package binarize_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestConcurrentUse encodes and decodes from many goroutines at once, in
// every format, while another goroutine keeps registering upcasters. Run it
// with -race.
func TestConcurrentUse(t *testing.T) {
	const goroutines, rounds, legacy = 16, 200, 100
	registries := []*binarize.Registry[Event]{
		newUpcastingEvents(t, binarize.JSON),
		newUpcastingEvents(t, binarize.Msgpack),
	}
	protos := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](protos, "StringValue")
	binarize.MustRegister[*timestamppb.Timestamp](protos, "Timestamp")
	state := binarize.Value[*Account](binarize.Msgpack)

	var wg sync.WaitGroup
	// The writer: upcasters of "Legacy" appear while the readers run.
	wg.Go(func() {
		for rev := range uint32(legacy) {
			for _, r := range registries {
				if err := binarize.Upcast(r, "Legacy", rev, func(old DepositedV1) (Event, error) {
					return Deposited{Cents: int64(old.Amount) + int64(rev)}, nil
				}); err != nil {
					t.Errorf("Upcast(Legacy, %d): %v", rev, err)
				}
			}
		}
	})
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				n := g*rounds + i
				events := []Event{
					Opened{ID: fmt.Sprint("acc-", n), Owner: "Ada"},
					Deposited{Cents: int64(n)},
					&Closed{Reason: fmt.Sprint(n), At: closedAt},
				}
				for _, r := range registries {
					for _, e := range events {
						name, rev, data, err := r.Encode(e)
						if err != nil {
							t.Errorf("%s: Encode(%#v): %v", r.Format().Name(), e, err)
							return
						}
						got, err := r.Decode(name, rev, data)
						if err != nil || !reflect.DeepEqual(normalize(got), normalize(e)) {
							t.Errorf("%s: Decode(Encode(%#v)) = %#v, %v", r.Format().Name(), e, got, err)
							return
						}
					}
					data, _ := r.Format().Marshal(DepositedV1{Amount: 7})
					rev := uint32(n % legacy)
					got, err := r.Decode("Legacy", rev, data)
					switch {
					case errors.Is(err, binarize.ErrUnknownEvent): // not registered yet
					case err != nil || got != (Deposited{Cents: 7 + int64(rev)}):
						t.Errorf("%s: Decode(Legacy, %d) = %#v, %v", r.Format().Name(), rev, got, err)
						return
					}
				}

				msg := wrapperspb.String(fmt.Sprint(n))
				name, rev, data, err := protos.Encode(msg)
				if err != nil {
					t.Errorf("protobuf: Encode: %v", err)
					return
				}
				if got, err := protos.Decode(name, rev, data); err != nil || !proto.Equal(got, msg) {
					t.Errorf("protobuf: Decode(Encode(%v)) = %v, %v", msg, got, err)
					return
				}

				a := &Account{ID: fmt.Sprint(n), Balance: int64(n), History: []int64{int64(n)}}
				b, err := state.Encode(a)
				if err != nil {
					t.Errorf("state: Encode: %v", err)
					return
				}
				if got, err := state.Decode(b); err != nil || !reflect.DeepEqual(got, a) {
					t.Errorf("state: Decode(Encode(%+v)) = %+v, %v", a, got, err)
					return
				}
			}
		})
	}
	wg.Wait()

	for _, r := range registries {
		data, _ := r.Format().Marshal(DepositedV1{Amount: 1})
		for rev := range uint32(legacy) {
			if got, err := r.Decode("Legacy", rev, data); err != nil || got != (Deposited{Cents: 1 + int64(rev)}) {
				t.Errorf("%s: after the writer: Decode(Legacy, %d) = %#v, %v", r.Format().Name(), rev, got, err)
			}
		}
	}
}

package binarize_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The history of an account's state: revision 0 held a whole balance and
// an owner, revision 1 a balance in cents, revision 2 (current) cents and
// a list of holders.
type (
	accountV0 struct {
		Balance int
		Owner   string
	}
	accountV1 struct{ Cents int64 }
	accountV2 struct {
		Cents   int64
		Holders []string
	}
)

func newAccountCodec(t testing.TB, f binarize.Format) *binarize.Versioned[accountV2] {
	t.Helper()
	v := binarize.NewVersioned[accountV2](f, 2)
	if err := binarize.UpcastValue(v, 0, func(old accountV0) (accountV2, error) {
		if old.Balance < 0 {
			return accountV2{}, errNegative
		}
		if old.Owner == "panic" {
			panic("bad owner")
		}
		return accountV2{Cents: int64(old.Balance) * 100, Holders: []string{old.Owner}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := binarize.UpcastValue(v, 1, func(old accountV1) (accountV2, error) {
		return accountV2{Cents: old.Cents}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVersionedDecodesEveryRevision(t *testing.T) {
	for _, f := range []binarize.Format{binarize.JSON, binarize.Msgpack} {
		v := newAccountCodec(t, f)
		if got := v.Revision(); got != 2 {
			t.Fatalf("Revision() = %d, want 2", got)
		}
		tests := []struct {
			revision uint32
			old      any
			want     accountV2
		}{
			{0, accountV0{Balance: 7, Owner: "ann"}, accountV2{Cents: 700, Holders: []string{"ann"}}},
			{1, accountV1{Cents: 42}, accountV2{Cents: 42}},
			{2, accountV2{Cents: 5, Holders: []string{"bo"}}, accountV2{Cents: 5, Holders: []string{"bo"}}},
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/rev%d", f.Name(), tc.revision), func(t *testing.T) {
				data, err := f.Marshal(tc.old)
				if err != nil {
					t.Fatal(err)
				}
				got, err := v.DecodeRevision(tc.revision, data)
				if err != nil {
					t.Fatalf("DecodeRevision(%d): %v", tc.revision, err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("DecodeRevision(%d) = %+v, want %+v", tc.revision, got, tc.want)
				}
			})
		}
		// Encode writes the current revision, which Decode reads.
		b, err := v.Encode(accountV2{Cents: 9, Holders: []string{"cy"}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Decode(b)
		if err != nil || got.Cents != 9 || len(got.Holders) != 1 || got.Holders[0] != "cy" {
			t.Fatalf("Decode(Encode(x)) = %+v, %v", got, err)
		}
	}
}

func TestVersionedDecodeErrors(t *testing.T) {
	f := binarize.Msgpack
	v := newAccountCodec(t, f)
	bare := binarize.NewVersioned[accountV2](f, 2)
	mustMarshal := func(x any) []byte {
		b, err := f.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name     string
		codec    *binarize.Versioned[accountV2]
		revision uint32
		data     []byte
		target   error
		want     string
	}{
		{"no upcaster", bare, 1, mustMarshal(accountV1{Cents: 1}), binarize.ErrUnknownRevision,
			"binarize: unknown revision: binarize_test.accountV2 rev 1 is older than the current revision and no upcaster is registered for it (current revision 2)"},
		{"newer", v, 3, mustMarshal(accountV2{}), binarize.ErrUnknownRevision,
			"binarize: unknown revision: binarize_test.accountV2 rev 3 is newer than the current revision: written by a later release (current revision 2; upcast revisions [0 1])"},
		{"bad bytes at current", v, 2, []byte{0xc1}, binarize.ErrDecode,
			`binarize: decode "binarize_test.accountV2" rev 2 (1 bytes): msgpack: invalid code 0xc1 at offset 0`},
		{"bad bytes at old", v, 0, []byte{0xc1}, binarize.ErrDecode,
			`binarize: decode "binarize_test.accountV2" rev 0 (1 bytes): msgpack: invalid code 0xc1 at offset 0`},
		{"upcaster error", v, 0, mustMarshal(accountV0{Balance: -1}), errNegative,
			`binarize: decode "binarize_test.accountV2" rev 0 (17 bytes): upcast from binarize_test.accountV0: negative amount`},
		{"upcaster panic", v, 0, mustMarshal(accountV0{Owner: "panic"}), binarize.ErrDecode,
			`binarize: decode "binarize_test.accountV2" rev 0 (22 bytes): upcast from binarize_test.accountV0: panic: bad owner`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.codec.DecodeRevision(tc.revision, tc.data)
			if !errors.Is(err, tc.target) {
				t.Fatalf("DecodeRevision(%d) error %v does not match %v", tc.revision, err, tc.target)
			}
			if err.Error() != tc.want {
				t.Fatalf("DecodeRevision(%d) error\n got %s\nwant %s", tc.revision, err, tc.want)
			}
		})
	}
}

func TestUpcastValueRefusesBadRegistrations(t *testing.T) {
	v := newAccountCodec(t, binarize.Msgpack)
	ok := func(accountV1) (accountV2, error) { return accountV2{}, nil }
	pb := binarize.NewVersioned[*wrapperspb.Int64Value](binarize.Protobuf, 1)
	tests := []struct {
		name   string
		err    error
		target error
		want   string
	}{
		{"nil codec", binarize.UpcastValue[accountV1, accountV2](nil, 0, ok), binarize.ErrInvalid,
			"binarize: invalid registration: UpcastValue rev 0: nil or zero Versioned; make it with NewVersioned"},
		{"nil function", binarize.UpcastValue[accountV1, accountV2](v, 0, nil), binarize.ErrInvalid,
			"binarize: invalid registration: UpcastValue binarize_test.accountV2 rev 0: nil function"},
		{"current revision", binarize.UpcastValue(v, 2, ok), binarize.ErrInvalid,
			"binarize: invalid registration: UpcastValue binarize_test.accountV2 rev 2: not lower than the current revision 2"},
		{"duplicate", binarize.UpcastValue(v, 1, ok), binarize.ErrDuplicate,
			"binarize: duplicate registration: UpcastValue binarize_test.accountV2 rev 1: an upcaster is already registered"},
		{"interface", binarize.UpcastValue(v, 0, func(fmt.Stringer) (accountV2, error) { return accountV2{}, nil }), binarize.ErrInvalid,
			"binarize: invalid registration: UpcastValue binarize_test.accountV2 rev 0: cannot decode into interface type fmt.Stringer"},
		{"protobuf non-message", binarize.UpcastValue(pb, 0, func(int64) (*wrapperspb.Int64Value, error) { return nil, nil }), binarize.ErrInvalid,
			"binarize: invalid registration: UpcastValue *wrapperspb.Int64Value rev 0: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, tc.target) {
				t.Fatalf("error %v does not match %v", tc.err, tc.target)
			}
			if tc.name == "protobuf non-message" {
				if len(tc.err.Error()) <= len(tc.want) || tc.err.Error()[:len(tc.want)] != tc.want {
					t.Fatalf("error\n got %s\nwant prefix %s", tc.err, tc.want)
				}
				return
			}
			if tc.err.Error() != tc.want {
				t.Fatalf("error\n got %s\nwant %s", tc.err, tc.want)
			}
		})
	}
	if err := binarize.UpcastValue(pb, 0, func(*wrapperspb.Int32Value) (*wrapperspb.Int64Value, error) { return nil, nil }); err != nil {
		t.Fatalf("UpcastValue of a message type: %v", err)
	}
	b, _ := binarize.Protobuf.Marshal(wrapperspb.Int32(3))
	if _, err := pb.DecodeRevision(0, b); err == nil || err.Error() != `binarize: decode "*wrapperspb.Int64Value" rev 0 (2 bytes): upcast from *wrapperspb.Int32Value: returned nil` {
		t.Fatalf("upcaster returning a nil pointer: %v", err)
	}
}

// TestVersionedRegisterWhileDecoding registers upcasters while other
// goroutines decode: the race detector checks that decoding reads an
// immutable table.
func TestVersionedRegisterWhileDecoding(t *testing.T) {
	v := binarize.NewVersioned[accountV2](binarize.JSON, 20)
	data, _ := binarize.JSON.Marshal(accountV1{Cents: 1})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for rev := uint32(0); rev < 20; rev++ {
				x, err := v.DecodeRevision(rev, data)
				if err == nil && x.Cents != 1 {
					t.Errorf("rev %d decoded %+v", rev, x)
				}
			}
		})
	}
	for rev := uint32(0); rev < 20; rev++ {
		binarize.MustUpcastValue(v, rev, func(old accountV1) (accountV2, error) { return accountV2{Cents: old.Cents}, nil })
	}
	wg.Wait()
	for rev := uint32(0); rev < 20; rev++ {
		if x, err := v.DecodeRevision(rev, data); err != nil || x.Cents != 1 {
			t.Fatalf("rev %d after registration: %+v, %v", rev, x, err)
		}
	}
}

func ExampleNewVersioned() {
	// Release 1 stored the balance in whole euros.
	type StateV1 struct{ Euros int }
	old, _ := binarize.Value[StateV1](binarize.JSON).Encode(StateV1{Euros: 3})

	// Release 2 stores cents at revision 2 and reads revision 1 snapshots.
	type State struct{ Cents int64 }
	state := binarize.NewVersioned[State](binarize.JSON, 2)
	binarize.MustUpcastValue(state, 1, func(o StateV1) (State, error) {
		return State{Cents: int64(o.Euros) * 100}, nil
	})

	s, err := state.DecodeRevision(1, old)
	fmt.Println(s.Cents, err)
	_, err = state.DecodeRevision(0, old)
	fmt.Println(errors.Is(err, binarize.ErrUnknownRevision))
	// Output:
	// 300 <nil>
	// true
}

package binarize_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var account = Account{
	ID:      "acc-1",
	Balance: 1234,
	Labels:  map[string]string{"tier": "gold", "region": "eu"},
	History: []int64{1000, 234},
	Owner:   &Person{Name: "Ada", Age: 36},
}

// roundTrip encodes v with c, decodes the bytes and compares the result with
// v.
func roundTrip[T any](t *testing.T, c binarize.Codec[T], v T) T {
	t.Helper()
	data, err := c.Encode(v)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", v, err)
	}
	got, err := c.Decode(data)
	if err != nil {
		t.Fatalf("Decode(%q): %v", data, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Errorf("Decode(Encode(v)) = %#v, want %#v", got, v)
	}
	return got
}

func TestValue(t *testing.T) {
	for _, f := range []binarize.Format{binarize.JSON, binarize.Msgpack} {
		t.Run(f.Name(), func(t *testing.T) {
			t.Run("struct", func(t *testing.T) {
				roundTrip(t, binarize.Value[Account](f), account)
				roundTrip(t, binarize.Value[Account](f), Account{})
			})
			t.Run("pointer to struct", func(t *testing.T) {
				c := binarize.Value[*Account](f)
				a := account
				if got := roundTrip(t, c, &a); got == &a {
					t.Error("Decode returned the encoded pointer, want a new value")
				}
				roundTrip(t, c, &Account{})
			})
			t.Run("map", func(t *testing.T) {
				roundTrip(t, binarize.Value[map[string]int64](f), map[string]int64{"a": 1, "b": -2, "c": 1 << 40})
				roundTrip(t, binarize.Value[map[string]int64](f), map[string]int64{})
				roundTrip(t, binarize.Value[map[string]int64](f), nil)
			})
			t.Run("slice and scalar", func(t *testing.T) {
				roundTrip(t, binarize.Value[[]string](f), []string{"x", "", "z"})
				roundTrip(t, binarize.Value[string](f), "héllo")
				roundTrip(t, binarize.Value[uint64](f), 1<<63)
			})
		})
	}
	t.Run("protobuf", func(t *testing.T) {
		st, err := structpb.NewStruct(map[string]any{"a": 1.5, "b": []any{"x", nil}})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []proto.Message{wrapperspb.String("hello"), timestamppb.New(closedAt), st} {
			data, err := binarize.Protobuf.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			var got proto.Message
			switch msg.(type) {
			case *wrapperspb.StringValue:
				got = protoRoundTrip(t, binarize.Value[*wrapperspb.StringValue](binarize.Protobuf), data)
			case *timestamppb.Timestamp:
				got = protoRoundTrip(t, binarize.Value[*timestamppb.Timestamp](binarize.Protobuf), data)
			case *structpb.Struct:
				got = protoRoundTrip(t, binarize.Value[*structpb.Struct](binarize.Protobuf), data)
			}
			if !proto.Equal(got, msg) {
				t.Errorf("Decode(Encode(%v)) = %v", msg, got)
			}
		}
	})
}

// protoRoundTrip decodes data with c and encodes the message again, which
// must give data back: the encoding is deterministic.
func protoRoundTrip[M proto.Message](t *testing.T, c binarize.Codec[M], data []byte) M {
	t.Helper()
	m, err := c.Decode(data)
	if err != nil {
		t.Fatalf("Decode(%x): %v", data, err)
	}
	again, err := c.Encode(m)
	if err != nil {
		t.Fatalf("Encode(%v): %v", m, err)
	}
	if string(again) != string(data) {
		t.Errorf("Encode(Decode(b)) = %x, want b = %x", again, data)
	}
	return m
}

func TestValueErrors(t *testing.T) {
	tests := []struct {
		name   string
		do     func() error
		wantIs error
		want   string
	}{
		{"json: bad bytes", func() error {
			_, err := binarize.Value[Account](binarize.JSON).Decode([]byte(`{"balance":"x"}`))
			return err
		}, binarize.ErrDecode, `binarize: decode "binarize_test.Account" rev 0 (15 bytes): json: cannot unmarshal string into Go struct field Account.balance of type int64`},
		{"msgpack: bad bytes into a pointer", func() error {
			_, err := binarize.Value[*Account](binarize.Msgpack).Decode([]byte{0xc1})
			return err
		}, binarize.ErrDecode, `binarize: decode "*binarize_test.Account" rev 0 (1 bytes): msgpack: invalid code 0xc1 at offset 0`},
		{"protobuf: bad bytes", func() error {
			_, err := binarize.Value[*wrapperspb.StringValue](binarize.Protobuf).Decode([]byte{0xff})
			return err
		}, binarize.ErrDecode, `binarize: decode "*wrapperspb.StringValue" rev 0 (1 bytes): proto`},
		{"protobuf: encode a struct", func() error {
			_, err := binarize.Value[Account](binarize.Protobuf).Encode(account)
			return err
		}, binarize.ErrEncode, `binarize: encode "binarize_test.Account" rev 0: protobuf: cannot marshal binarize_test.Account: not a proto.Message`},
		{"protobuf: decode a struct", func() error {
			_, err := binarize.Value[Account](binarize.Protobuf).Decode(nil)
			return err
		}, binarize.ErrDecode, `binarize: decode "binarize_test.Account" rev 0 (0 bytes): protobuf: cannot unmarshal into *binarize_test.Account: not a proto.Message`},
		{"protobuf: decode a pointer to a struct", func() error {
			_, err := binarize.Value[*Account](binarize.Protobuf).Decode(nil)
			return err
		}, binarize.ErrDecode, `binarize: decode "*binarize_test.Account" rev 0 (0 bytes): protobuf: cannot unmarshal into *binarize_test.Account: not a proto.Message`},
		{"nil pointer", func() error {
			_, err := binarize.Value[*Account](binarize.JSON).Encode(nil)
			return err
		}, binarize.ErrEncode, `binarize: encode "*binarize_test.Account" rev 0: nil pointer *binarize_test.Account`},
		{"nil message", func() error {
			_, err := binarize.Value[*wrapperspb.StringValue](binarize.Protobuf).Encode(nil)
			return err
		}, binarize.ErrEncode, `binarize: encode "*wrapperspb.StringValue" rev 0: nil pointer *wrapperspb.StringValue`},
		{"msgpack: unsupported type", func() error {
			_, err := binarize.Value[func()](binarize.Msgpack).Encode(func() {})
			return err
		}, binarize.ErrEncode, `binarize: encode "func()" rev 0: msgpack: Encode(unsupported func())`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("error = %v, want %v", err, tc.wantIs)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error =\n%q, want it to start with\n%q", err, tc.want)
			}
			var de *binarize.DecodeError
			var ee *binarize.EncodeError
			if !errors.As(err, &de) && !errors.As(err, &ee) {
				t.Errorf("error = %#v, want a *DecodeError or an *EncodeError", err)
			}
		})
	}
}

// panicky panics in its own decoders, which must not panic the codec.
type panicky struct{ N int }

func (p *panicky) UnmarshalJSON([]byte) error { panic("UnmarshalJSON exploded") }

func TestValueRecoversPanics(t *testing.T) {
	_, err := binarize.Value[panicky](binarize.JSON).Decode([]byte(`{}`))
	if want := `binarize: decode "binarize_test.panicky" rev 0 (2 bytes): json: panic: UnmarshalJSON exploded`; err == nil || err.Error() != want {
		t.Errorf("Decode error = %v, want %q", err, want)
	}

	// A Format of someone else's that panics.
	_, err = binarize.Value[Account](panickingFormat{}).Decode([]byte(`x`))
	if want := `binarize: decode "binarize_test.Account" rev 0 (1 bytes): panic: boom`; err == nil || err.Error() != want {
		t.Errorf("Decode with a panicking format: error = %v, want %q", err, want)
	}
	_, err = binarize.Value[Account](panickingFormat{}).Encode(Account{})
	if want := `binarize: encode "binarize_test.Account" rev 0: panic: boom`; err == nil || err.Error() != want {
		t.Errorf("Encode with a panicking format: error = %v, want %q", err, want)
	}
}

type panickingFormat struct{}

func (panickingFormat) Name() string                { return "panicking" }
func (panickingFormat) Marshal(any) ([]byte, error) { panic("boom") }
func (panickingFormat) Unmarshal([]byte, any) error { panic("boom") }

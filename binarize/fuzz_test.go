package binarize_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// junk is seed input that is not a valid encoding in any format.
var junk = [][]byte{
	nil,
	{0x00},
	{0xc1},
	{0xff, 0xff, 0xff, 0xff},
	{0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, // msgpack array32 of 4 billion
	{0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa0, 0x00}, // msgpack map32 of 2 billion
	{0xc6, 0x7f, 0xff, 0xff, 0xff},             // msgpack bin32 of 2 GB
	{0x81, 0x91, 0x01, 0x02},                   // msgpack map with an array key
	{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},       // protobuf field 1, length 4 GB
	{0x0b, 0x0c},                               // protobuf group start, wrong end
	[]byte(`{"`),
	[]byte(`{"id":`),
	[]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`),
	bytes.Repeat([]byte{0x91}, 200),
	[]byte("null"),
}

// equivalent reports whether a and b hold the same data, counting an empty
// slice or map as equal to nil (omitempty drops one and brings back the
// other) and times at the same instant as equal (msgpack decodes times in
// the local zone).
func equivalent(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == reflect.TypeFor[time.Time]() {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equivalent(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !equivalent(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equivalent(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equivalent(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
}

// checkEventFixpoint checks what every successful Decode of r must satisfy:
// the event encodes, its bytes decode to an equivalent event, and that
// encodes to the same bytes again.
func checkEventFixpoint[E any](t *testing.T, r *binarize.Registry[E], e E, compare bool) {
	t.Helper()
	name, rev, data, err := r.Encode(e)
	if err != nil {
		t.Fatalf("Encode(%#v) of a decoded event: %v", e, err)
	}
	e2, err := r.Decode(name, rev, data)
	if err != nil {
		t.Fatalf("Decode(%q, %d, %q) of a re-encoded event: %v", name, rev, data, err)
	}
	if compare && !equivalent(reflect.ValueOf(&e).Elem(), reflect.ValueOf(&e2).Elem()) {
		t.Fatalf("re-decoded event = %#v, want %#v", e2, e)
	}
	name2, rev2, data2, err := r.Encode(e2)
	if err != nil || name2 != name || rev2 != rev || !bytes.Equal(data2, data) {
		t.Fatalf("Encode(re-decoded event) = %q, %d, %q, %v; want %q, %d, %q", name2, rev2, data2, err, name, rev, data)
	}
}

// checkValueFixpoint is checkEventFixpoint for a Codec.
func checkValueFixpoint[T any](t *testing.T, c binarize.Codec[T], v T, compare bool) {
	t.Helper()
	data, err := c.Encode(v)
	if err != nil {
		t.Fatalf("Encode(%#v) of a decoded value: %v", v, err)
	}
	v2, err := c.Decode(data)
	if err != nil {
		t.Fatalf("Decode(%q) of a re-encoded value: %v", data, err)
	}
	if compare && !equivalent(reflect.ValueOf(&v).Elem(), reflect.ValueOf(&v2).Elem()) {
		t.Fatalf("re-decoded value = %#v, want %#v", v2, v)
	}
	if data2, err := c.Encode(v2); err != nil || !bytes.Equal(data2, data) {
		t.Fatalf("Encode(re-decoded value) = %q, %v; want %q", data2, err, data)
	}
}

// addEventSeeds adds the encodings of the test events, their old shapes and
// junk under every name.
func addEventSeeds(f *testing.F, format binarize.Format) {
	r := newEvents(f, format)
	for _, e := range []Event{
		Opened{ID: "acc-1", Owner: "Ada", Tags: []string{"a", ""}},
		Deposited{Cents: -1 << 40, Note: "n"},
		&Closed{Reason: "r", At: closedAt},
	} {
		name, rev, data, err := r.Encode(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(name, rev, data)
		f.Add(name, rev, data[:len(data)/2])
	}
	for _, old := range []struct {
		name string
		rev  uint32
		v    any
	}{{"Deposited", 1, DepositedV1{Amount: 3}}, {"Deposited", 1, DepositedV1{Amount: -3}}, {"MoneyIn", 0, MoneyIn{Euros: 2, Memo: "m"}}} {
		data, err := format.Marshal(old.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(old.name, old.rev, data)
	}
	for _, j := range junk {
		f.Add("Opened", uint32(0), j)
		f.Add("Closed", uint32(0), j)
		f.Add("Deposited", uint32(1), j)
	}
	f.Add("Nope", uint32(9), []byte("{}"))
}

func fuzzEvents(f *testing.F, format binarize.Format) {
	addEventSeeds(f, format)
	r := newUpcastingEvents(f, format)
	f.Fuzz(func(t *testing.T, name string, revision uint32, data []byte) {
		e, err := r.Decode(name, revision, data)
		if err != nil {
			if e != nil {
				t.Fatalf("Decode returned %#v with error %v", e, err)
			}
			return
		}
		checkEventFixpoint(t, r, e, true)
	})
}

func FuzzDecodeJSON(f *testing.F) { fuzzEvents(f, binarize.JSON) }

func FuzzDecodeMsgpack(f *testing.F) { fuzzEvents(f, binarize.Msgpack) }

func newProtoEvents(t testing.TB) *binarize.Registry[proto.Message] {
	r := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](r, "StringValue", binarize.Revision(1))
	binarize.MustRegister[*timestamppb.Timestamp](r, "Timestamp")
	binarize.MustRegister[*structpb.Struct](r, "Struct")
	binarize.MustUpcast(r, "StringValue", 0, func(old *wrapperspb.BytesValue) (proto.Message, error) {
		// Bytes need not be UTF-8; a proto3 string must be, or it does not
		// encode again.
		return wrapperspb.String(strings.ToValidUTF8(string(old.GetValue()), "\uFFFD")), nil
	})
	return r
}

func FuzzDecodeProtobuf(f *testing.F) {
	st, err := structpb.NewStruct(map[string]any{"a": 1.5, "b": []any{"x", nil, true, map[string]any{"c": "d"}}})
	if err != nil {
		f.Fatal(err)
	}
	r := newProtoEvents(f)
	for _, m := range []proto.Message{wrapperspb.String("hello"), timestamppb.New(closedAt), st} {
		name, rev, data, err := r.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(name, rev, data)
		f.Add(name, rev, data[:len(data)-1])
	}
	old, _ := proto.Marshal(wrapperspb.Bytes([]byte("\xff invalid UTF-8")))
	f.Add("StringValue", uint32(0), old)
	for _, j := range junk {
		f.Add("Struct", uint32(0), j)
		f.Add("StringValue", uint32(1), j)
	}
	f.Fuzz(func(t *testing.T, name string, revision uint32, data []byte) {
		e, err := r.Decode(name, revision, data)
		if err != nil {
			if e != nil {
				t.Fatalf("Decode returned %v with error %v", e, err)
			}
			return
		}
		// proto.Equal treats NaN as unequal to itself: compare bytes only.
		checkEventFixpoint(t, r, e, false)
	})
}

func addValueSeeds(f *testing.F, format binarize.Format) {
	for _, a := range []Account{account, {}} {
		data, err := format.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)-1])
	}
	for _, j := range junk {
		f.Add(j)
	}
}

func FuzzValueDecodeJSON(f *testing.F) {
	addValueSeeds(f, binarize.JSON)
	c := binarize.Value[Account](binarize.JSON)
	p := binarize.Value[*Account](binarize.JSON)
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := c.Decode(data); err == nil {
			checkValueFixpoint(t, c, v, true)
		}
		if v, err := p.Decode(data); err == nil {
			checkValueFixpoint(t, p, v, true)
		}
	})
}

func FuzzValueDecodeMsgpack(f *testing.F) {
	addValueSeeds(f, binarize.Msgpack)
	c := binarize.Value[Account](binarize.Msgpack)
	p := binarize.Value[*Account](binarize.Msgpack)
	a := binarize.Value[any](binarize.Msgpack)
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := c.Decode(data); err == nil {
			checkValueFixpoint(t, c, v, true)
		}
		if v, err := p.Decode(data); err == nil {
			checkValueFixpoint(t, p, v, true)
		}
		// Untyped values hold floats (NaN != NaN) and maps whose keys msgpack
		// does not sort: they must encode and decode again, no more.
		if v, err := a.Decode(data); err == nil {
			b, err := a.Encode(v)
			if err != nil {
				t.Fatalf("Encode(%#v) of a decoded value: %v", v, err)
			}
			if _, err := a.Decode(b); err != nil {
				t.Fatalf("Decode(%q) of a re-encoded value: %v", b, err)
			}
		}
	})
}

func FuzzValueDecodeProtobuf(f *testing.F) {
	st, err := structpb.NewStruct(map[string]any{"a": 1.5, "b": []any{"x", nil, true}})
	if err != nil {
		f.Fatal(err)
	}
	data, _ := proto.Marshal(st)
	f.Add(data)
	for _, j := range junk {
		f.Add(j)
	}
	c := binarize.Value[*structpb.Struct](binarize.Protobuf)
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := c.Decode(data); err == nil {
			checkValueFixpoint(t, c, v, false)
		}
	})
}

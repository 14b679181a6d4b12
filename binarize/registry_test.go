package binarize_test

import (
	"errors"
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

var closedAt = time.Date(2024, 5, 1, 12, 30, 0, 123456789, time.UTC)

// newEvents returns a registry of the three test events in f, Deposited at
// revision 2.
func newEvents(t testing.TB, f binarize.Format) *binarize.Registry[Event] {
	t.Helper()
	r := binarize.NewRegistry[Event](f)
	for _, err := range []error{
		binarize.Register[Opened](r, "Opened"),
		binarize.Register[Deposited](r, "Deposited", binarize.Revision(2)),
		binarize.Register[*Closed](r, "Closed"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// normalize makes decoded events comparable with reflect.DeepEqual: msgpack
// decodes times in the local time zone.
func normalize(e Event) Event {
	if c, ok := e.(*Closed); ok && c != nil {
		cc := *c
		cc.At = cc.At.UTC()
		return &cc
	}
	return e
}

func TestRegistryRoundTrip(t *testing.T) {
	events := []struct {
		event    Event
		name     string
		revision uint32
	}{
		{Opened{ID: "acc-1", Owner: "Ada", Tags: []string{"gold", "eu"}}, "Opened", 0},
		{Opened{}, "Opened", 0},
		{Deposited{Cents: 1050, Note: "salary"}, "Deposited", 2},
		{Deposited{Cents: -7}, "Deposited", 2},
		{&Closed{Reason: "moved away", At: closedAt}, "Closed", 0},
		{&Closed{}, "Closed", 0},
	}
	for _, f := range []binarize.Format{binarize.JSON, binarize.Msgpack} {
		r := newEvents(t, f)
		for _, tc := range events {
			t.Run(f.Name()+"/"+tc.name, func(t *testing.T) {
				name, rev, data, err := r.Encode(tc.event)
				if err != nil {
					t.Fatalf("Encode(%#v): %v", tc.event, err)
				}
				if name != tc.name || rev != tc.revision {
					t.Errorf("Encode(%#v) = %q rev %d, want %q rev %d", tc.event, name, rev, tc.name, tc.revision)
				}
				got, err := r.Decode(name, rev, data)
				if err != nil {
					t.Fatalf("Decode(%q, %d, %q): %v", name, rev, data, err)
				}
				if got, want := normalize(got), normalize(tc.event); !reflect.DeepEqual(got, want) {
					t.Errorf("Decode(Encode(e)) = %#v, want %#v", got, want)
				}
				if got, ok := r.Name(tc.event); !ok || got != tc.name {
					t.Errorf("Name(%#v) = %q, %v; want %q, true", tc.event, got, ok, tc.name)
				}
			})
		}
	}
}

// TestRegistryBytes pins the wire encoding, which events written today must
// keep decoding from: JSON field names from the json tags; msgpack maps keyed
// by the json tags, compact integers.
func TestRegistryBytes(t *testing.T) {
	tests := []struct {
		format binarize.Format
		event  Event
		want   string
	}{
		{binarize.JSON, Deposited{Cents: 5}, `{"cents":5}`},
		{binarize.JSON, Opened{ID: "a", Owner: "b"}, `{"id":"a","owner":"b"}`},
		{binarize.Msgpack, Deposited{Cents: 5}, "\x81\xa5cents\x05"},
		{binarize.Msgpack, Deposited{Cents: 300, Note: "x"}, "\x82\xa5cents\xcd\x01\x2c\xa4note\xa1x"},
		{binarize.Msgpack, Opened{ID: "a", Owner: "b"}, "\x82\xa2id\xa1a\xa5owner\xa1b"},
	}
	for _, tc := range tests {
		t.Run(tc.format.Name(), func(t *testing.T) {
			_, _, got, err := newEvents(t, tc.format).Encode(tc.event)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Encode(%#v) = %q, want %q", tc.event, got, tc.want)
			}
		})
	}
}

func TestRegistryProtobuf(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{"owner": "Ada", "balance": 12.5, "tags": []any{"gold", true}, "closed": nil})
	if err != nil {
		t.Fatal(err)
	}
	messages := []struct {
		msg  proto.Message
		name string
	}{
		{wrapperspb.String("hello"), "StringValue"},
		{wrapperspb.String(""), "StringValue"},
		{timestamppb.New(closedAt), "Timestamp"},
		{st, "Struct"},
		{&structpb.Struct{}, "Struct"},
	}

	// E = proto.Message: any generated message can be an event.
	pr := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](pr, "StringValue")
	binarize.MustRegister[*timestamppb.Timestamp](pr, "Timestamp", binarize.Revision(3))
	binarize.MustRegister[*structpb.Struct](pr, "Struct")
	// E = any works the same.
	ar := binarize.NewRegistry[any](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](ar, "StringValue")
	binarize.MustRegister[*timestamppb.Timestamp](ar, "Timestamp", binarize.Revision(3))
	binarize.MustRegister[*structpb.Struct](ar, "Struct")

	for _, tc := range messages {
		t.Run(tc.name, func(t *testing.T) {
			wantRev := uint32(0)
			if tc.name == "Timestamp" {
				wantRev = 3
			}
			name, rev, data, err := pr.Encode(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.name || rev != wantRev {
				t.Errorf("Encode(%v) = %q rev %d, want %q rev %d", tc.msg, name, rev, tc.name, wantRev)
			}
			if want, _ := (proto.MarshalOptions{Deterministic: true}).Marshal(tc.msg); string(data) != string(want) {
				t.Errorf("Encode(%v) = %x, want the proto encoding %x", tc.msg, data, want)
			}
			got, err := pr.Decode(name, rev, data)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.msg) {
				t.Errorf("Decode(Encode(m)) = %v, want %v", got, tc.msg)
			}
			if got == tc.msg {
				t.Error("Decode returned the encoded message itself, want a new one")
			}

			aname, arev, adata, err := ar.Encode(tc.msg)
			if err != nil || aname != name || arev != rev || string(adata) != string(data) {
				t.Errorf("registry of any: Encode = %q, %d, %x, %v; want %q, %d, %x, <nil>", aname, arev, adata, err, name, rev, data)
			}
			agot, err := ar.Decode(name, rev, data)
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := agot.(proto.Message); !ok || !proto.Equal(m, tc.msg) {
				t.Errorf("registry of any: Decode = %v, want %v", agot, tc.msg)
			}
		})
	}
	if got, want := pr.Names(), []string{"StringValue", "Struct", "Timestamp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestRegistryNamesAndFormat(t *testing.T) {
	r := newEvents(t, binarize.Msgpack)
	binarize.MustUpcast(r, "MoneyIn", 0, func(old MoneyIn) (Event, error) { return Deposited{}, nil })
	if got, want := r.Names(), []string{"Closed", "Deposited", "Opened"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q (upcast-only names are not listed)", got, want)
	}
	names := r.Names()
	names[0] = "changed"
	if got := r.Names()[0]; got != "Closed" {
		t.Errorf("Names()[0] = %q after changing an earlier result, want %q", got, "Closed")
	}
	if got := r.Format(); got != binarize.Msgpack {
		t.Errorf("Format() = %v, want Msgpack", got)
	}
	for _, e := range []Event{nil, unregistered{}, (*Opened)(nil)} {
		if name, ok := r.Name(e); ok || name != "" {
			t.Errorf("Name(%#v) = %q, %v; want \"\", false", e, name, ok)
		}
	}
}

func TestRegistryEncodeErrors(t *testing.T) {
	r := newEvents(t, binarize.JSON)
	tests := []struct {
		name   string
		event  Event
		wantIs error
		want   string
	}{
		{"nil event", nil, binarize.ErrNotRegistered, "binarize: type not registered: nil event"},
		{"pointer to a value-registered type", &Opened{}, binarize.ErrNotRegistered, "binarize: type not registered: *binarize_test.Opened"},
		{"unregistered type", unregistered{}, binarize.ErrNotRegistered, "binarize: type not registered: binarize_test.unregistered"},
		{"nil pointer", (*Closed)(nil), binarize.ErrEncode, `binarize: encode "Closed" rev 0: nil pointer *binarize_test.Closed`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, rev, data, err := r.Encode(tc.event)
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Encode(%#v) error = %v, want %v", tc.event, err, tc.wantIs)
			}
			if err.Error() != tc.want {
				t.Errorf("Encode(%#v) error = %q, want %q", tc.event, err, tc.want)
			}
			if name != "" || rev != 0 || data != nil {
				t.Errorf("Encode(%#v) = %q, %d, %q with an error, want zero values", tc.event, name, rev, data)
			}
		})
	}

	var ee *binarize.EncodeError
	_, _, _, err := r.Encode((*Closed)(nil))
	if !errors.As(err, &ee) || ee.Name != "Closed" || ee.Revision != 0 {
		t.Errorf("Encode(nil *Closed) error = %#v, want an *EncodeError for \"Closed\" rev 0", err)
	}
}

type unregistered struct{}

func (unregistered) isEvent() {}

// badEvent fails to encode in every way a type can.
type badEvent struct {
	Ch    chan int `json:"ch"`
	Panic bool     `json:"-" msgpack:"-"`
}

func (badEvent) isEvent() {}

func (b badEvent) MarshalJSON() ([]byte, error) {
	if b.Panic {
		panic("MarshalJSON exploded")
	}
	return nil, errors.New("cannot marshal a badEvent")
}

func TestRegistryEncodeFormatErrors(t *testing.T) {
	tests := []struct {
		format binarize.Format
		event  badEvent
		want   string
	}{
		{binarize.JSON, badEvent{}, `binarize: encode "Bad" rev 4: json: error calling MarshalJSON for type binarize_test.badEvent: cannot marshal a badEvent`},
		{binarize.JSON, badEvent{Panic: true}, `binarize: encode "Bad" rev 4: json: panic: MarshalJSON exploded`},
		{binarize.Msgpack, badEvent{}, `binarize: encode "Bad" rev 4: msgpack: Encode(unsupported chan int)`},
	}
	for _, tc := range tests {
		t.Run(tc.format.Name(), func(t *testing.T) {
			r := binarize.NewRegistry[Event](tc.format)
			binarize.MustRegister[badEvent](r, "Bad", binarize.Revision(4))
			_, _, _, err := r.Encode(tc.event)
			var ee *binarize.EncodeError
			if !errors.As(err, &ee) || !errors.Is(err, binarize.ErrEncode) {
				t.Fatalf("Encode error = %v, want an *EncodeError matching ErrEncode", err)
			}
			if ee.Name != "Bad" || ee.Revision != 4 {
				t.Errorf("EncodeError = %q rev %d, want %q rev 4", ee.Name, ee.Revision, "Bad")
			}
			if err.Error() != tc.want {
				t.Errorf("Encode error = %q, want %q", err, tc.want)
			}
		})
	}
}

func TestRegistryDecodeErrors(t *testing.T) {
	tests := []struct {
		format   binarize.Format
		name     string
		revision uint32
		data     string
		wantIs   error
		want     string
	}{
		{binarize.JSON, "Nope", 0, `{}`, binarize.ErrUnknownEvent, `binarize: unknown event "Nope" rev 0`},
		{binarize.JSON, "Deposited", 1, `{}`, binarize.ErrUnknownEvent, `binarize: unknown event "Deposited" rev 1 (current revision 2)`},
		{binarize.JSON, "Opened", 0, `{"id":`, binarize.ErrDecode, `binarize: decode "Opened" rev 0 (6 bytes): json: unexpected end of JSON input`},
		{binarize.JSON, "Opened", 0, `{"id":7}`, binarize.ErrDecode, `binarize: decode "Opened" rev 0 (8 bytes): json: cannot unmarshal number into Go struct field Opened.id of type string`},
		{binarize.JSON, "Opened", 0, `{} {}`, binarize.ErrDecode, `binarize: decode "Opened" rev 0 (5 bytes): json: invalid character '{' after top-level value`},
		{binarize.JSON, "Closed", 0, ``, binarize.ErrDecode, `binarize: decode "Closed" rev 0 (0 bytes): json: unexpected end of JSON input`},
		{binarize.Msgpack, "Deposited", 2, "\x81\xa5cents", binarize.ErrDecode, `binarize: decode "Deposited" rev 2 (7 bytes): msgpack: truncated input`},
		{binarize.Msgpack, "Deposited", 2, "\x81\xa5cents\x05\x05", binarize.ErrDecode, `binarize: decode "Deposited" rev 2 (9 bytes): msgpack: 1 bytes of trailing data after the value`},
		{binarize.Msgpack, "Deposited", 2, "\x81\xa5cents\xa1x", binarize.ErrDecode, `binarize: decode "Deposited" rev 2 (9 bytes): msgpack: invalid code=a1 decoding int64`},
		{binarize.Msgpack, "Opened", 0, "\xdd\xff\xff\xff\xff\x00", binarize.ErrDecode, `binarize: decode "Opened" rev 0 (6 bytes): msgpack: array at offset 0 claims 4294967295 items, more than the 1 bytes left`},
	}
	for _, tc := range tests {
		t.Run(tc.format.Name()+"/"+tc.name, func(t *testing.T) {
			r := newEvents(t, tc.format)
			e, err := r.Decode(tc.name, tc.revision, []byte(tc.data))
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Decode(%q, %d, %q) error = %v, want %v", tc.name, tc.revision, tc.data, err, tc.wantIs)
			}
			if err.Error() != tc.want {
				t.Errorf("Decode(%q, %d, %q) error =\n%q, want\n%q", tc.name, tc.revision, tc.data, err, tc.want)
			}
			if e != nil {
				t.Errorf("Decode(%q, %d, %q) = %#v with an error, want nil", tc.name, tc.revision, tc.data, e)
			}
			if tc.wantIs == binarize.ErrDecode {
				var de *binarize.DecodeError
				if !errors.As(err, &de) || de.Name != tc.name || de.Revision != tc.revision || de.Size != len(tc.data) || de.Err == nil {
					t.Errorf("Decode error = %#v, want a *DecodeError{%q, %d, %d, cause}", err, tc.name, tc.revision, len(tc.data))
				}
			}
		})
	}
}

func TestRegistryProtobufDecodeErrors(t *testing.T) {
	r := binarize.NewRegistry[proto.Message](binarize.Protobuf)
	binarize.MustRegister[*wrapperspb.StringValue](r, "StringValue")
	// Field 1 (value), length 5, but only 2 bytes follow.
	_, err := r.Decode("StringValue", 0, []byte{0x0a, 0x05, 'h', 'i'})
	var de *binarize.DecodeError
	if !errors.As(err, &de) || de.Name != "StringValue" || de.Size != 4 {
		t.Fatalf("Decode(truncated) error = %v, want a *DecodeError for StringValue, 4 bytes", err)
	}
	if got, prefix := err.Error(), `binarize: decode "StringValue" rev 0 (4 bytes): proto`; !strings.HasPrefix(got, prefix) {
		t.Errorf("Decode(truncated) error = %q, want prefix %q", got, prefix)
	}
}

func TestZeroRegistry(t *testing.T) {
	var r binarize.Registry[Event]
	if _, _, _, err := r.Encode(Opened{}); !errors.Is(err, binarize.ErrNotRegistered) {
		t.Errorf("zero Registry: Encode error = %v, want ErrNotRegistered", err)
	}
	if _, err := r.Decode("Opened", 0, []byte("{}")); !errors.Is(err, binarize.ErrUnknownEvent) {
		t.Errorf("zero Registry: Decode error = %v, want ErrUnknownEvent", err)
	}
	if err := binarize.Register[Opened](&r, "Opened"); !errors.Is(err, binarize.ErrInvalid) || !strings.Contains(err.Error(), "NewRegistry") {
		t.Errorf("zero Registry: Register error = %v, want ErrInvalid naming NewRegistry", err)
	}
	if got := r.Names(); len(got) != 0 {
		t.Errorf("zero Registry: Names() = %q, want none", got)
	}
}

// sized is a family of distinct event types: sized[[1]byte], sized[[2]byte] ...
type sized[T any] struct {
	N   int `json:"n"`
	Pad T   `json:"-"`
}

// TestRegistryManyTypes checks lookups by type below and above the number of
// types a registry scans for rather than hashes: every type encodes under its
// own name before and after more types are registered.
func TestRegistryManyTypes(t *testing.T) {
	r := binarize.NewRegistry[any](binarize.JSON)
	events := []any{}
	add := func(e any, register func() error) {
		t.Helper()
		if err := register(); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	check := func() {
		t.Helper()
		for i, e := range events {
			name, _, data, err := r.Encode(e)
			if err != nil {
				t.Fatalf("%d types registered: Encode %T: %v", len(events), e, err)
			}
			if want := "E" + string(rune('a'+i)); name != want || string(data) != `{"n":7}` {
				t.Fatalf("%d types registered: Encode %T = %q %s, want %q {\"n\":7}", len(events), e, name, data, want)
			}
			if got, ok := r.Name(e); !ok || got != name {
				t.Fatalf("Name(%T) = %q %v, want %q", e, got, ok, name)
			}
		}
		if _, _, _, err := r.Encode(sized[[99]byte]{}); !errors.Is(err, binarize.ErrNotRegistered) {
			t.Fatalf("%d types registered: unregistered type: %v, want ErrNotRegistered", len(events), err)
		}
	}
	add(sized[[1]byte]{N: 7}, func() error { return binarize.Register[sized[[1]byte]](r, "Ea") })
	add(sized[[2]byte]{N: 7}, func() error { return binarize.Register[sized[[2]byte]](r, "Eb") })
	add(sized[[3]byte]{N: 7}, func() error { return binarize.Register[sized[[3]byte]](r, "Ec") })
	add(sized[[4]byte]{N: 7}, func() error { return binarize.Register[sized[[4]byte]](r, "Ed") })
	add(sized[[5]byte]{N: 7}, func() error { return binarize.Register[sized[[5]byte]](r, "Ee") })
	add(sized[[6]byte]{N: 7}, func() error { return binarize.Register[sized[[6]byte]](r, "Ef") })
	add(sized[[7]byte]{N: 7}, func() error { return binarize.Register[sized[[7]byte]](r, "Eg") })
	add(sized[[8]byte]{N: 7}, func() error { return binarize.Register[sized[[8]byte]](r, "Eh") })
	check()
	add(sized[[9]byte]{N: 7}, func() error { return binarize.Register[sized[[9]byte]](r, "Ei") })
	add(sized[[10]byte]{N: 7}, func() error { return binarize.Register[sized[[10]byte]](r, "Ej") })
	check()
}

// AppendEncode is Encode that appends: the same name, revision and bytes,
// after what the buffer held, in every format; errors are Encode's.
func TestRegistryAppendEncode(t *testing.T) {
	prefix := []byte("prefix")
	for _, f := range []binarize.Format{binarize.JSON, binarize.Msgpack} {
		t.Run(f.Name(), func(t *testing.T) {
			r := newEvents(t, f)
			for _, e := range []Event{Opened{Owner: "ada"}, Deposited{Cents: 7}, &Closed{At: closedAt}} {
				wantName, wantRev, want, err := r.Encode(e)
				if err != nil {
					t.Fatal(err)
				}
				dst := append(make([]byte, 0, 64), prefix...)
				name, rev, got, err := r.AppendEncode(dst, e)
				if err != nil || name != wantName || rev != wantRev || string(got) != string(prefix)+string(want) {
					t.Errorf("AppendEncode(%q, %#v) = %q, %d, %q, %v; want %q, %d, %q", prefix, e, name, rev, got, err, wantName, wantRev, string(prefix)+string(want))
				}
				if &got[0] != &dst[:1][0] {
					t.Errorf("AppendEncode(%#v) did not append in place with room to spare", e)
				}
			}
			encErr := func(e Event) error { _, _, _, err := r.Encode(e); return err }
			for _, e := range []Event{nil, unregistered{}, (*Closed)(nil)} {
				name, rev, data, err := r.AppendEncode(prefix, e)
				if err == nil || err.Error() != encErr(e).Error() || name != "" || rev != 0 || data != nil {
					t.Errorf("AppendEncode(%#v) = %q, %d, %q, %v; want Encode's error %v and zero values", e, name, rev, data, err, encErr(e))
				}
			}
		})
	}
	t.Run("protobuf", func(t *testing.T) {
		r := binarize.NewRegistry[proto.Message](binarize.Protobuf)
		binarize.MustRegister[*wrapperspb.StringValue](r, "StringValue")
		e := wrapperspb.String("ada")
		_, _, want, err := r.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		_, _, got, err := r.AppendEncode(prefix, e)
		if err != nil || string(got) != string(prefix)+string(want) {
			t.Errorf("AppendEncode = %q, %v; want %q", got, err, string(prefix)+string(want))
		}
	})
}

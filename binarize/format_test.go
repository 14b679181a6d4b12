package binarize_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestFormatNames(t *testing.T) {
	for f, want := range map[binarize.Format]string{binarize.JSON: "json", binarize.Msgpack: "msgpack", binarize.Protobuf: "protobuf"} {
		if got := f.Name(); got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
	}
}

func TestProtobufNonMessages(t *testing.T) {
	var nilMsg *wrapperspb.StringValue
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"marshal a struct", func() error { _, err := binarize.Protobuf.Marshal(account); return err },
			"binarize: protobuf: cannot marshal binarize_test.Account: not a proto.Message"},
		{"marshal a message by value", func() error {
			_, err := binarize.Protobuf.Marshal(proto.Clone(wrapperspb.String("x")).(*wrapperspb.StringValue).GetValue())
			return err
		}, "binarize: protobuf: cannot marshal string: not a proto.Message"},
		{"marshal nil", func() error { _, err := binarize.Protobuf.Marshal(nil); return err },
			"binarize: protobuf: cannot marshal <nil>: not a proto.Message"},
		{"unmarshal into a struct pointer", func() error { return binarize.Protobuf.Unmarshal(nil, &Account{}) },
			"binarize: protobuf: cannot unmarshal into *binarize_test.Account: not a proto.Message"},
		{"unmarshal into nil", func() error { return binarize.Protobuf.Unmarshal(nil, nil) },
			"binarize: protobuf: cannot unmarshal into <nil>: not a proto.Message"},
		{"unmarshal into a nil message", func() error { return binarize.Protobuf.Unmarshal([]byte{0x0a, 0x01, 'x'}, nilMsg) },
			"binarize: protobuf: cannot unmarshal into nil *wrapperspb.StringValue"},
		{"unmarshal into a nil pointer to a message pointer", func() error {
			return binarize.Protobuf.Unmarshal(nil, (**wrapperspb.StringValue)(nil))
		}, "binarize: protobuf: cannot unmarshal into **wrapperspb.StringValue: not a proto.Message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestProtobufUnmarshalPointerToMessagePointer(t *testing.T) {
	data, err := binarize.Protobuf.Marshal(wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	var m *wrapperspb.StringValue
	if err := binarize.Protobuf.Unmarshal(data, &m); err != nil || m.GetValue() != "hi" {
		t.Errorf("Unmarshal(&nil message) = %v, %v; want \"hi\"", m, err)
	}
	keep := wrapperspb.String("old")
	m = keep
	if err := binarize.Protobuf.Unmarshal(data, &m); err != nil || m != keep || keep.GetValue() != "hi" {
		t.Errorf("Unmarshal(&message) = %v, %v; want the same message, now \"hi\"", m, err)
	}
}

func TestJSONTrailingData(t *testing.T) {
	var v map[string]int
	err := binarize.JSON.Unmarshal([]byte(`{"a":1}x`), &v)
	if err == nil || err.Error() != "binarize: json: invalid character 'x' after top-level value" {
		t.Errorf("Unmarshal with trailing data: error = %v", err)
	}
}

func TestMsgpackUnmarshalHostileInput(t *testing.T) {
	nested := func(depth int) []byte { return append(bytes.Repeat([]byte{0x91}, depth), 0x00) }
	tests := []struct {
		name string
		data []byte
		want string // the error; "" for success
	}{
		{"array32 of 4 billion", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, "binarize: msgpack: array at offset 0 claims 4294967295 items, more than the 0 bytes left"},
		{"map32 of 4 billion", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0x00}, "binarize: msgpack: map at offset 0 claims 8589934590 items, more than the 2 bytes left"},
		{"nested claims exceed the input", []byte{0x92, 0xdc, 0x00, 0x03, 0x01, 0x02, 0x03}, "binarize: msgpack: array at offset 1 claims 3 items, more than the 3 bytes left"},
		{"str32 of 4 GB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, "binarize: msgpack: truncated input"},
		{"bin32 of 4 GB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, "binarize: msgpack: truncated input"},
		{"ext32 of 4 GB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, "binarize: msgpack: truncated input"},
		{"empty", nil, "binarize: msgpack: truncated input"},
		{"reserved code", []byte{0xc1}, "binarize: msgpack: invalid code 0xc1 at offset 0"},
		{"nesting 10000 deep", nested(10000), ""},
		{"nesting 10001 deep", nested(10001), "binarize: msgpack: nesting deeper than 10000 at offset 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			err := binarize.Msgpack.Unmarshal(tc.data, &v)
			var got string
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Unmarshal(%.20x) error = %q, want %q", tc.data, got, tc.want)
			}
		})
	}
}

func TestMsgpackUnhashableKey(t *testing.T) {
	// A map whose key is an array: the library panics inserting it.
	var v map[any]any
	err := binarize.Msgpack.Unmarshal([]byte{0x81, 0x91, 0x01, 0x02}, &v)
	if err == nil || !strings.HasPrefix(err.Error(), "binarize: msgpack: panic: ") || !strings.Contains(err.Error(), "unhashable") {
		t.Errorf("Unmarshal error = %v, want a recovered panic about an unhashable key", err)
	}
}

// exploding panics when msgpack decodes it.
type exploding struct{}

func (*exploding) DecodeMsgpack(*msgpack.Decoder) error { panic(errors.New("DecodeMsgpack exploded")) }

func (exploding) EncodeMsgpack(*msgpack.Encoder) error { panic("EncodeMsgpack exploded") }

func TestMsgpackRecoversPanics(t *testing.T) {
	var e exploding
	err := binarize.Msgpack.Unmarshal([]byte{0x80}, &e)
	if err == nil || err.Error() != "binarize: msgpack: panic: DecodeMsgpack exploded" {
		t.Errorf("Unmarshal error = %v", err)
	}
	_, err = binarize.Msgpack.Marshal(e)
	if err == nil || err.Error() != "binarize: msgpack: panic: EncodeMsgpack exploded" {
		t.Errorf("Marshal error = %v", err)
	}
	// The pools still work after a panic.
	b, err := binarize.Msgpack.Marshal(map[string]string{"b": "2", "a": "1"})
	if err != nil || string(b) != "\x82\xa1a\xa11\xa1b\xa12" {
		t.Errorf("Marshal after a panic = %q, %v", b, err)
	}
}

// TestMsgpackTags pins how struct fields are named: the msgpack tag, else
// the json tag, else the Go name.
func TestMsgpackTags(t *testing.T) {
	type tagged struct {
		Both    int `msgpack:"m" json:"j"`
		JSON    int `json:"j2"`
		None    int
		Skipped int `json:"-"`
		Empty   int `json:",omitempty"`
	}
	b, err := binarize.Msgpack.Marshal(tagged{1, 2, 3, 4, 0})
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x83\xa1m\x01\xa2j2\x02\xa4None\x03"; string(b) != want {
		t.Errorf("Marshal = %q, want %q", b, want)
	}
	var got tagged
	if err := binarize.Msgpack.Unmarshal(b, &got); err != nil || got != (tagged{1, 2, 3, 0, 0}) {
		t.Errorf("Unmarshal = %+v, %v", got, err)
	}
}

func TestMsgpackMarshalDoesNotAlias(t *testing.T) {
	a, _ := binarize.Msgpack.Marshal("first")
	b, _ := binarize.Msgpack.Marshal("second")
	if string(a) != "\xa5first" || string(b) != "\xa6second" {
		t.Errorf("Marshal results = %q, %q: one overwrote the other", a, b)
	}
	big := strings.Repeat("x", 100<<10)
	c, err := binarize.Msgpack.Marshal(big)
	if err != nil || len(c) != len(big)+5 {
		t.Errorf("Marshal(100 KiB string) = %d bytes, %v", len(c), err)
	}
}

package binarize

import (
	"encoding/json"
	"reflect"
)

// Format is a wire format: it turns any Go value it supports into bytes and
// back. The formats of this package are [JSON], [Msgpack] and [Protobuf];
// other implementations must be safe for concurrent use, like these.
type Format interface {
	// Name returns the format's short name, such as "json".
	Name() string
	// Marshal returns the encoding of v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value v points to. It returns an error,
	// and never panics, whatever data holds.
	Unmarshal(data []byte, v any) error
}

var (
	// JSON is the encoding/json format. Unmarshal rejects trailing data and
	// ignores unknown object keys, so fields can be added to a type without a
	// new revision.
	JSON Format = jsonFormat{}
	// Msgpack is the MessagePack format of github.com/vmihailenco/msgpack/v5.
	// Structs are maps keyed by field name, taken from the msgpack struct tag,
	// else from the json struct tag, else the Go field name; integers take
	// their most compact form; the keys of map[string]string, map[string]bool
	// and map[string]any are sorted. Unmarshal checks that data is exactly one
	// well-formed value, whose lengths fit in data and whose nesting is at
	// most 10,000 deep, before decoding it: a short input cannot make the
	// decoder allocate more than the input could hold. Encoders and decoders
	// are pooled.
	Msgpack Format = msgpackFormat{}
	// Protobuf is the binary protocol buffers format of
	// google.golang.org/protobuf/proto. It encodes messages only: Marshal
	// takes a proto.Message (a pointer to a generated message), Unmarshal a
	// proto.Message or a pointer to a message pointer, which it allocates when
	// nil. Any other value is an error naming its Go type. Marshal is
	// deterministic: map entries are sorted.
	Protobuf Format = protobufFormat{}
)

// appendFormat is implemented by formats that can write an encoding to
// the end of a caller's buffer: Marshal(v) is appendMarshal(nil, v).
type appendFormat interface {
	// appendMarshal appends the encoding of v to dst and returns the
	// extended slice.
	appendMarshal(dst []byte, v any) ([]byte, error)
}

// typeChecker is implemented by formats that can tell at registration time
// that they cannot encode a Go type, so a registry fails early instead of on
// the first event.
type typeChecker interface {
	checkType(t reflect.Type) error
}

// jsonFormat is [JSON].
type jsonFormat struct{}

func (jsonFormat) Name() string { return "json" }

func (jsonFormat) Marshal(v any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, libError("json", "json:", panicError(r))
		}
	}()
	b, err = json.Marshal(v)
	if err != nil {
		return nil, libError("json", "json:", err)
	}
	return b, nil
}

func (jsonFormat) Unmarshal(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = libError("json", "json:", panicError(r))
		}
	}()
	if err := json.Unmarshal(data, v); err != nil {
		return libError("json", "json:", err)
	}
	return nil
}

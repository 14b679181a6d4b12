package binarize

import (
	"fmt"
	"reflect"

	"google.golang.org/protobuf/proto"
)

// protobufFormat is [Protobuf].
type protobufFormat struct{}

var (
	protoMarshal   = proto.MarshalOptions{Deterministic: true}
	protoUnmarshal = proto.UnmarshalOptions{}
	protoMessage   = reflect.TypeFor[proto.Message]()
)

func (protobufFormat) Name() string { return "protobuf" }

func (f protobufFormat) Marshal(v any) ([]byte, error) { return f.appendMarshal(nil, v) }

// appendMarshal implements appendFormat.
func (protobufFormat) appendMarshal(dst []byte, v any) (b []byte, err error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("binarize: protobuf: cannot marshal %T: not a proto.Message", v)
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, libError("protobuf", "proto:", panicError(r))
		}
	}()
	if dst == nil {
		b, err = protoMarshal.Marshal(m)
	} else {
		b, err = protoMarshal.MarshalAppend(dst, m)
	}
	if err != nil {
		return nil, libError("protobuf", "proto:", err)
	}
	return b, nil
}

func (protobufFormat) Unmarshal(data []byte, v any) (err error) {
	m, ok := v.(proto.Message)
	if !ok {
		// Like encoding/json, accept a pointer to a message pointer and
		// allocate the message when it is nil.
		rv := reflect.ValueOf(v)
		if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() ||
			rv.Elem().Kind() != reflect.Pointer || !rv.Elem().Type().Implements(protoMessage) {
			return fmt.Errorf("binarize: protobuf: cannot unmarshal into %T: not a proto.Message", v)
		}
		if rv.Elem().IsNil() {
			rv.Elem().Set(reflect.New(rv.Elem().Type().Elem()))
		}
		m = rv.Elem().Interface().(proto.Message)
	}
	defer func() {
		if r := recover(); r != nil {
			err = libError("protobuf", "proto:", panicError(r))
		}
	}()
	if !m.ProtoReflect().IsValid() {
		return fmt.Errorf("binarize: protobuf: cannot unmarshal into nil %T", v)
	}
	if err := protoUnmarshal.Unmarshal(data, m); err != nil {
		return libError("protobuf", "proto:", err)
	}
	return nil
}

// checkType reports whether values of t can be marshalled: t must be a
// pointer type that implements proto.Message.
func (protobufFormat) checkType(t reflect.Type) error {
	if t.Kind() != reflect.Pointer || !t.Implements(protoMessage) {
		return fmt.Errorf("protobuf cannot encode %s: not a pointer to a proto message", t)
	}
	return nil
}

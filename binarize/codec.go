package binarize

import (
	"context"
	"errors"
	"fmt"
	"reflect"
)

// Codec converts values of T to bytes and back. It serves values of one
// known type, such as an entity's state in a snapshot, a command or a reply;
// events of several types go through an [EventCodec].
type Codec[T any] interface {
	// Encode returns the bytes of v.
	Encode(v T) ([]byte, error)
	// Decode returns the value held by data.
	Decode(data []byte) (T, error)
}

// Value returns the [Codec] of T in format f. T may be a value type (a
// struct, map, slice, number ...) or a pointer type, such as *State or
// *pb.Msg; then Decode allocates a new value to point to, and Encode of a
// nil pointer is an error. With [Protobuf], T must be a pointer to a
// generated message. Value panics if f is nil.
//
// The codec is safe for concurrent use if f is. Its errors are
// [*EncodeError] and [*DecodeError] named after T's Go type; Decode never
// panics, whatever data holds.
func Value[T any](f Format) Codec[T] {
	if f == nil {
		panic("binarize: Value: nil Format")
	}
	t := reflect.TypeFor[T]()
	return valueCodec[T]{f: f, name: t.String(), elem: pointee(t)}
}

// pointee returns the type t points to, or nil if t is not a pointer type.
func pointee(t reflect.Type) reflect.Type {
	if t.Kind() != reflect.Pointer {
		return nil
	}
	return t.Elem()
}

// valueCodec is the [Codec] that [Value] returns.
type valueCodec[T any] struct {
	f    Format
	name string       // T's Go type, for errors
	elem reflect.Type // what T points to, or nil if T is not a pointer
}

var _ Codec[int] = valueCodec[int]{}

func (c valueCodec[T]) Encode(v T) ([]byte, error) {
	b, err := encodeValue(c.f, any(v), c.elem != nil)
	if err != nil {
		return nil, &EncodeError{Name: c.name, Err: err}
	}
	return b, nil
}

func (c valueCodec[T]) Decode(data []byte) (T, error) {
	v, err := decodeValue[T](c.f, data, c.elem)
	if err != nil {
		return v, &DecodeError{Name: c.name, Size: len(data), Err: err}
	}
	return v, nil
}

var errNilPointer = errors.New("nil pointer")

// encodeValue marshals v with f, refusing a nil pointer (ptr says v holds a
// pointer), whose bytes would decode to a non-nil zero value, and turning a
// panic of f into an error.
func encodeValue(f Format, v any, ptr bool) (b []byte, err error) {
	if ptr && reflect.ValueOf(v).IsNil() {
		return nil, fmt.Errorf("%w %T", errNilPointer, v)
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, panicError(r)
		}
	}()
	return f.Marshal(v)
}

// appendValue is encodeValue that appends the encoding to dst, directly if
// f is an appendFormat.
func appendValue(f Format, dst []byte, v any, ptr bool) (b []byte, err error) {
	af, ok := f.(appendFormat)
	if !ok {
		b, err := encodeValue(f, v, ptr)
		if err != nil {
			return nil, err
		}
		return append(dst, b...), nil
	}
	if ptr && reflect.ValueOf(v).IsNil() {
		return nil, fmt.Errorf("%w %T", errNilPointer, v)
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, panicError(r)
		}
	}()
	return af.appendMarshal(dst, v)
}

// decodeValue unmarshals data with f into a new T, allocating a new elem
// when T is a pointer type (elem is not nil), and turning a panic of f into
// an error.
func decodeValue[T any](f Format, data []byte, elem reflect.Type) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, panicError(r)
		}
	}()
	if elem != nil {
		p := reflect.New(elem).Interface()
		if err := f.Unmarshal(data, p); err != nil {
			return v, err
		}
		return p.(T), nil
	}
	if err := f.Unmarshal(data, &v); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// ContextEventCodec is an [EventCodec] whose work may wait on something
// outside the process, such as the key store of an encrypting codec
// (binarize/shred): EncodeContext and DecodeContext take the caller's
// context, so its deadline bounds that wait. The entity runtime calls them
// instead of Encode and Decode when a type's event codec has them.
type ContextEventCodec[E any] interface {
	EventCodec[E]
	// EncodeContext is Encode under ctx.
	EncodeContext(ctx context.Context, e E) (name string, revision uint32, data []byte, err error)
	// DecodeContext is Decode under ctx.
	DecodeContext(ctx context.Context, name string, revision uint32, data []byte) (E, error)
}

// AppendEventCodec is an [EventCodec] that can write the bytes of an
// event to the end of a caller's buffer: a caller that reuses its buffer
// then allocates nothing for the bytes of its events. The entity runtime
// encodes with AppendEncode when a type's event codec has it (and is not
// a [ContextEventCodec]). A [Registry] is one.
type AppendEventCodec[E any] interface {
	EventCodec[E]
	// AppendEncode is Encode that appends the bytes of e to dst and
	// returns the extended slice as data: the bytes of e are
	// data[len(dst):]. On an error it returns nil data.
	AppendEncode(dst []byte, e E) (name string, revision uint32, data []byte, err error)
}

// ContextRevisionCodec is a [RevisionCodec] whose work may wait on
// something outside the process, as [ContextEventCodec] is for events: the
// entity runtime decodes snapshots with DecodeRevisionContext under the
// recovery's context when a type's State codec has it.
type ContextRevisionCodec[T any] interface {
	RevisionCodec[T]
	// DecodeRevisionContext is DecodeRevision under ctx.
	DecodeRevisionContext(ctx context.Context, revision uint32, data []byte) (T, error)
}

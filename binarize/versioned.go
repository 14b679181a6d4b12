package binarize

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
)

// RevisionCodec is a [Codec] that knows the schema revision it writes and
// can read bytes written at other revisions: the codec of values that
// outlive the code that wrote them, such as an entity's state in snapshots.
// [*Versioned] is the implementation. The entity runtime stores Revision
// beside each snapshot and decodes it with DecodeRevision.
type RevisionCodec[T any] interface {
	Codec[T]
	// Revision returns the revision Encode writes.
	Revision() uint32
	// DecodeRevision returns the value that data, written at revision,
	// holds. It returns an error matching [ErrUnknownRevision] if it cannot
	// read that revision.
	DecodeRevision(revision uint32, data []byte) (T, error)
}

var _ RevisionCodec[int] = (*Versioned[int])(nil)

// Versioned is the [RevisionCodec] of T in a format: it encodes T at its
// current revision and decodes older revisions through the upcasters
// registered with [UpcastValue]. Make it with [NewVersioned]; register its
// upcasters at start-up. It is safe for concurrent use; decoding takes no
// lock.
type Versioned[T any] struct {
	value    valueCodec[T]
	revision uint32
	// mu serializes registrations, each of which replaces upcasts.
	mu sync.Mutex
	// upcasts maps an older revision to its decoder. A registration
	// stores a new map; a stored map is never modified.
	upcasts atomic.Pointer[map[uint32]func([]byte) (T, error)]
}

// NewVersioned returns the codec of T in format f at the current revision
// revision. Without upcasters it reads only that revision. It panics if f is
// nil.
//
//	state := binarize.NewVersioned[AccountV2](binarize.Msgpack, 2)
//	binarize.MustUpcastValue(state, 1, func(old AccountV1) (AccountV2, error) {
//		return AccountV2{Cents: int64(old.Balance) * 100}, nil
//	})
func NewVersioned[T any](f Format, revision uint32) *Versioned[T] {
	if f == nil {
		panic("binarize: NewVersioned: nil Format")
	}
	t := reflect.TypeFor[T]()
	return &Versioned[T]{value: valueCodec[T]{f: f, name: t.String(), elem: pointee(t)}, revision: revision}
}

// Revision returns the revision Encode writes.
func (v *Versioned[T]) Revision() uint32 { return v.revision }

// Encode returns the bytes of x at the current revision. Its errors are as
// those of a [Value] codec, with the revision.
func (v *Versioned[T]) Encode(x T) ([]byte, error) {
	b, err := v.value.Encode(x)
	if err != nil {
		err.(*EncodeError).Revision = v.revision
	}
	return b, err
}

// Decode returns the value held by data written at the current revision.
func (v *Versioned[T]) Decode(data []byte) (T, error) {
	return v.DecodeRevision(v.revision, data)
}

// DecodeRevision returns the value held by data written at revision: decoded
// as T at the current revision, else through the upcaster of revision. It
// returns an error matching [ErrUnknownRevision] that names the revisions
// it can read if revision has neither, and a [*DecodeError] if data cannot
// be decoded or the upcaster fails. It never panics, whatever data holds.
func (v *Versioned[T]) DecodeRevision(revision uint32, data []byte) (T, error) {
	if revision == v.revision {
		x, err := v.value.Decode(data)
		if err != nil {
			err.(*DecodeError).Revision = revision
		}
		return x, err
	}
	var decode func([]byte) (T, error)
	if m := v.upcasts.Load(); m != nil {
		decode = (*m)[revision]
	}
	if decode == nil {
		var zero T
		return zero, v.unknown(revision)
	}
	x, err := decode(data)
	if err != nil {
		return x, &DecodeError{Name: v.value.name, Revision: revision, Size: len(data), Err: err}
	}
	return x, nil
}

// unknown describes a revision v cannot read.
func (v *Versioned[T]) unknown(revision uint32) error {
	why := "older than the current revision and no upcaster is registered for it"
	if revision > v.revision {
		why = "newer than the current revision: written by a later release"
	}
	var upcasts string
	if m := v.upcasts.Load(); m != nil && len(*m) > 0 {
		upcasts = fmt.Sprintf("; upcast revisions %v", slices.Sorted(maps.Keys(*m)))
	}
	return fmt.Errorf("%w: %s rev %d is %s (current revision %d%s)", ErrUnknownRevision, v.value.name, revision, why, v.revision, upcasts)
}

// UpcastValue registers how v reads bytes written at an older revision: it
// decodes them as an Old, in v's format, and returns what fn makes of it.
// An error or a panic of fn is wrapped in the [*DecodeError] that
// DecodeRevision returns. There is no implicit chaining: the upcaster of
// revision 0 returns the current T, calling the steps of later revisions
// itself if it wants to.
//
// UpcastValue returns an error matching [ErrInvalid] if v or fn is nil, Old
// is an interface type with methods, v's format cannot decode Old, or
// revision is not lower than v's current revision; and one matching
// [ErrDuplicate] if revision already has an upcaster.
func UpcastValue[Old, T any](v *Versioned[T], revision uint32, fn func(Old) (T, error)) error {
	switch {
	case v == nil || v.value.f == nil:
		return fmt.Errorf("%w: UpcastValue rev %d: nil or zero Versioned; make it with NewVersioned", ErrInvalid, revision)
	case fn == nil:
		return fmt.Errorf("%w: UpcastValue %s rev %d: nil function", ErrInvalid, v.value.name, revision)
	case revision >= v.revision:
		return fmt.Errorf("%w: UpcastValue %s rev %d: not lower than the current revision %d", ErrInvalid, v.value.name, revision, v.revision)
	}
	decode, err := upcaster(v.value.f, fn)
	if err != nil {
		return fmt.Errorf("%w: UpcastValue %s rev %d: %w", ErrInvalid, v.value.name, revision, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	m := map[uint32]func([]byte) (T, error){}
	if old := v.upcasts.Load(); old != nil {
		if (*old)[revision] != nil {
			return fmt.Errorf("%w: UpcastValue %s rev %d: an upcaster is already registered", ErrDuplicate, v.value.name, revision)
		}
		m = maps.Clone(*old)
	}
	m[revision] = decode
	v.upcasts.Store(&m)
	return nil
}

// MustUpcastValue is like [UpcastValue] but panics on error, for codecs
// built in package-level variables or init functions.
func MustUpcastValue[Old, T any](v *Versioned[T], revision uint32, fn func(Old) (T, error)) {
	if err := UpcastValue(v, revision, fn); err != nil {
		panic(err)
	}
}

// upcaster returns the decoder that reads bytes in f as an Old and returns
// what fn makes of it, turning a panic of fn into an error and refusing a
// nil result. It returns an error if Old cannot be decoded into or f cannot
// handle it.
func upcaster[Old, T any](f Format, fn func(Old) (T, error)) (func([]byte) (T, error), error) {
	ot := reflect.TypeFor[Old]()
	if ot.Kind() == reflect.Interface && ot.NumMethod() > 0 {
		return nil, fmt.Errorf("cannot decode into interface type %s", ot)
	}
	if c, ok := f.(typeChecker); ok {
		if err := c.checkType(ot); err != nil {
			return nil, err
		}
	}
	elem := pointee(ot)
	return func(data []byte) (x T, err error) {
		old, err := decodeValue[Old](f, data, elem)
		if err != nil {
			return x, err
		}
		defer func() {
			if rec := recover(); rec != nil {
				var zero T
				x, err = zero, fmt.Errorf("upcast from %s: %w", ot, panicError(rec))
			}
		}()
		x, err = fn(old)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("upcast from %s: %w", ot, err)
		}
		if any(x) == nil || isNilPointer(x) {
			var zero T
			return zero, fmt.Errorf("upcast from %s: returned nil", ot)
		}
		return x, nil
	}, nil
}

// isNilPointer reports whether x is a nil pointer.
func isNilPointer(x any) bool {
	v := reflect.ValueOf(x)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

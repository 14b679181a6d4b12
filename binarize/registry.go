package binarize

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// EventCodec encodes the events of a polymorphic event type E, usually an
// interface that several structs implement, together with the name of each
// event's type and the schema revision the bytes are written at, which an
// event log stores beside the bytes. [*Registry] is the implementation.
type EventCodec[E any] interface {
	// Encode returns the name, current revision and bytes of e.
	Encode(e E) (name string, revision uint32, data []byte, err error)
	// Decode returns the event that name, revision and data describe.
	Decode(name string, revision uint32, data []byte) (E, error)
}

var (
	_ EventCodec[any]       = (*Registry[any])(nil)
	_ AppendEventCodec[any] = (*Registry[any])(nil)
)

// Registry is the [EventCodec] of the concrete event types registered in it
// with [Register], and of older revisions registered with [Upcast]. Build it
// at start-up; from then on it is read-only, and Encode and Decode take no
// lock. Make one with [NewRegistry].
type Registry[E any] struct {
	format Format
	// mu serializes registrations, each of which replaces state.
	mu sync.Mutex
	// state is never modified once stored: a registration stores a copy.
	state atomic.Pointer[registryState[E]]
}

// registryState is one immutable generation of a Registry's contents.
type registryState[E any] struct {
	byName map[string]*nameEntry[E]
	byType map[reflect.Type]typeEntry
	names  []string // sorted names of the current types
	// small lists byType's entries while there are few: a scan comparing
	// type pointers beats hashing an interface key.
	small []typeKey
}

// smallTypes is how many types a registry scans for rather than hashes.
const smallTypes = 8

// typeKey is a registered type with its entry.
type typeKey struct {
	t  reflect.Type
	te typeEntry
}

// typeOf returns the entry of type t.
func (s *registryState[E]) typeOf(t reflect.Type) (typeEntry, bool) {
	if len(s.byType) <= smallTypes {
		for i := range s.small {
			if s.small[i].t == t {
				return s.small[i].te, true
			}
		}
		return typeEntry{}, false
	}
	te, ok := s.byType[t]
	return te, ok
}

// nameEntry holds the decoders of one event name: its current type, if the
// name is registered, and its upcasters by revision.
type nameEntry[E any] struct {
	typ      reflect.Type // current type, nil if the name only has upcasters
	revision uint32       // current revision
	decode   func([]byte) (E, error)
	upcasts  map[uint32]func([]byte) (E, error)
}

// typeEntry is how values of a registered type are encoded.
type typeEntry struct {
	name     string
	revision uint32
	ptr      bool // the type is a pointer type: nil values are refused
}

// NewRegistry returns an empty registry whose events are encoded in format
// f. It panics if f is nil.
func NewRegistry[E any](f Format) *Registry[E] {
	if f == nil {
		panic("binarize: NewRegistry: nil Format")
	}
	r := &Registry[E]{format: f}
	r.state.Store(&registryState[E]{
		byName: map[string]*nameEntry[E]{},
		byType: map[reflect.Type]typeEntry{},
	})
	return r
}

// Format returns the format the registry encodes events in.
func (r *Registry[E]) Format() Format { return r.format }

// Encode returns the registered name and current revision of e's dynamic
// type, and e's bytes. It returns an error matching [ErrNotRegistered] if
// e's type is not registered or e is nil, and an [*EncodeError] if e cannot
// be encoded, a nil pointer included.
func (r *Registry[E]) Encode(e E) (string, uint32, []byte, error) {
	v := any(e)
	t := reflect.TypeOf(v)
	if t == nil {
		return "", 0, nil, fmt.Errorf("%w: nil event", ErrNotRegistered)
	}
	te, ok := r.load().typeOf(t)
	if !ok {
		return "", 0, nil, fmt.Errorf("%w: %T", ErrNotRegistered, v)
	}
	b, err := encodeValue(r.format, v, te.ptr)
	if err != nil {
		return "", 0, nil, &EncodeError{Name: te.name, Revision: te.revision, Err: err}
	}
	return te.name, te.revision, b, nil
}

// AppendEncode implements [AppendEventCodec]: it is [Registry.Encode]
// that appends the bytes of e to dst. With [Msgpack] and [Protobuf] it
// writes them there directly; with other formats it copies them.
func (r *Registry[E]) AppendEncode(dst []byte, e E) (string, uint32, []byte, error) {
	v := any(e)
	t := reflect.TypeOf(v)
	if t == nil {
		return "", 0, nil, fmt.Errorf("%w: nil event", ErrNotRegistered)
	}
	te, ok := r.load().typeOf(t)
	if !ok {
		return "", 0, nil, fmt.Errorf("%w: %T", ErrNotRegistered, v)
	}
	b, err := appendValue(r.format, dst, v, te.ptr)
	if err != nil {
		return "", 0, nil, &EncodeError{Name: te.name, Revision: te.revision, Err: err}
	}
	return te.name, te.revision, b, nil
}

// Decode returns the event that data holds, written as the event name at
// revision: as the name's current type if revision is its current revision,
// else through the upcaster registered for that name and revision. It
// returns an error matching [ErrUnknownEvent] if neither is registered, and
// a [*DecodeError] if data cannot be decoded or the upcaster fails. It never
// panics, whatever data holds.
func (r *Registry[E]) Decode(name string, revision uint32, data []byte) (E, error) {
	var decode func([]byte) (E, error)
	n := r.load().byName[name]
	if n != nil {
		if n.typ != nil && n.revision == revision {
			decode = n.decode
		} else {
			decode = n.upcasts[revision]
		}
	}
	if decode == nil {
		var zero E
		return zero, unknownEvent(n, name, revision)
	}
	e, err := decode(data)
	if err != nil {
		return e, &DecodeError{Name: name, Revision: revision, Size: len(data), Err: err}
	}
	return e, nil
}

// unknownEvent describes a name and revision with no decoder, saying which
// revisions of the name are known, if any.
func unknownEvent[E any](n *nameEntry[E], name string, revision uint32) error {
	if n == nil {
		return fmt.Errorf("%w %q rev %d", ErrUnknownEvent, name, revision)
	}
	var upcasts string
	if len(n.upcasts) > 0 {
		upcasts = fmt.Sprintf("upcast revisions %v", slices.Sorted(maps.Keys(n.upcasts)))
	}
	switch {
	case n.typ == nil:
		return fmt.Errorf("%w %q rev %d (no current type; %s)", ErrUnknownEvent, name, revision, upcasts)
	case upcasts == "":
		return fmt.Errorf("%w %q rev %d (current revision %d)", ErrUnknownEvent, name, revision, n.revision)
	default:
		return fmt.Errorf("%w %q rev %d (current revision %d; %s)", ErrUnknownEvent, name, revision, n.revision, upcasts)
	}
}

// Name returns the registered name of e's dynamic type, and whether it is
// registered.
func (r *Registry[E]) Name(e E) (string, bool) {
	t := reflect.TypeOf(any(e))
	if t == nil {
		return "", false
	}
	te, ok := r.load().typeOf(t)
	return te.name, ok
}

// Names returns the sorted names of the registered types. Names that only
// have upcasters, such as the old name of a renamed event, are not listed.
func (r *Registry[E]) Names() []string {
	return slices.Clone(r.load().names)
}

// Option configures a [Register] call.
type Option func(*registerOptions)

// registerOptions holds the settings of one [Register] call.
type registerOptions struct {
	revision uint32
}

// Revision sets the current schema revision of a registered type, which
// [Registry.Encode] writes beside its bytes. The default is 0. Raise it when
// the type's encoding changes in a way old readers cannot follow, and
// register how to read the old revision with [Upcast].
func Revision(n uint32) Option {
	return func(o *registerOptions) { o.revision = n }
}

// Register adds the concrete type T to r under name, at its current
// revision, 0 unless [Revision] says otherwise. T must implement E when E is
// an interface type, and be E otherwise.
//
// Register returns an error matching [ErrInvalid] if name is empty, T is an
// interface type, T does not implement E, r's format cannot encode T (a
// [Protobuf] registry takes pointers to generated messages only), or an
// upcaster of name has a revision not lower than T's; and an error matching
// [ErrDuplicate] if name or T is already registered, or an upcaster of name
// has T's revision.
func Register[T, E any](r *Registry[E], name string, opts ...Option) error {
	var o registerOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	t, et := reflect.TypeFor[T](), reflect.TypeFor[E]()
	switch {
	case r.format == nil:
		return fmt.Errorf("%w: Register %q: registry has no format; make it with NewRegistry", ErrInvalid, name)
	case name == "":
		return fmt.Errorf("%w: Register %s: empty name", ErrInvalid, t)
	case t.Kind() == reflect.Interface:
		return fmt.Errorf("%w: Register %q: %s is an interface type, not a concrete type", ErrInvalid, name, t)
	case et.Kind() == reflect.Interface && !t.Implements(et):
		return fmt.Errorf("%w: Register %q: %s does not implement %s", ErrInvalid, name, t, et)
	case et.Kind() != reflect.Interface && t != et:
		return fmt.Errorf("%w: Register %q: %s is not the event type %s", ErrInvalid, name, t, et)
	}
	if c, ok := r.format.(typeChecker); ok {
		if err := c.checkType(t); err != nil {
			return fmt.Errorf("%w: Register %q: %w", ErrInvalid, name, err)
		}
	}
	f, elem := r.format, pointee(t)
	decode := func(data []byte) (E, error) {
		v, err := decodeValue[T](f, data, elem)
		if err != nil {
			var zero E
			return zero, err
		}
		return any(v).(E), nil
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.load()
	if te, ok := s.byType[t]; ok {
		return fmt.Errorf("%w: Register %q: type %s is already registered as %q", ErrDuplicate, name, t, te.name)
	}
	n := s.byName[name]
	if n != nil && n.typ != nil {
		return fmt.Errorf("%w: Register %s: name %q is already registered for %s", ErrDuplicate, t, name, n.typ)
	}
	if n != nil {
		for rev := range n.upcasts {
			if rev == o.revision {
				return fmt.Errorf("%w: Register %q rev %d: an upcaster is registered for that revision", ErrDuplicate, name, o.revision)
			}
			if rev > o.revision {
				return fmt.Errorf("%w: Register %q rev %d: not higher than upcast revision %d", ErrInvalid, name, o.revision, rev)
			}
		}
	}

	ne := &nameEntry[E]{typ: t, revision: o.revision, decode: decode}
	if n != nil {
		ne.upcasts = n.upcasts
	}
	ns := s.clone()
	ns.byName[name] = ne
	ns.byType[t] = typeEntry{name: name, revision: o.revision, ptr: t.Kind() == reflect.Pointer}
	if len(ns.byType) <= smallTypes {
		ns.small = append(ns.small, typeKey{t, ns.byType[t]})
	}
	ns.names = append(ns.names, name)
	sort.Strings(ns.names)
	r.state.Store(ns)
	return nil
}

// MustRegister is like [Register] but panics on error, for registries built
// in package-level variables or init functions.
func MustRegister[T, E any](r *Registry[E], name string, opts ...Option) {
	if err := Register[T](r, name, opts...); err != nil {
		panic(err)
	}
}

// Upcast registers how to read bytes written as the event name at an older
// revision: [Registry.Decode] decodes them as an Old, in r's format, and
// returns what fn makes of it, usually the current event. The current event
// may have another name and type than Old, so an event type can be renamed:
// register the new name with [Register] and upcast the old name's revisions.
// An error of fn is wrapped in the [*DecodeError] that Decode returns, and so
// is a panic of fn.
//
// Upcast returns an error matching [ErrInvalid] if name is empty, fn is nil,
// Old is an interface type with methods, r's format cannot decode Old, or
// revision is higher than the current revision of name; and an error
// matching [ErrDuplicate] if revision is the current revision of name or
// already has an upcaster. Register checks the same ordering when the
// upcasters come first.
func Upcast[Old, E any](r *Registry[E], name string, revision uint32, fn func(Old) (E, error)) error {
	ot := reflect.TypeFor[Old]()
	switch {
	case r.format == nil:
		return fmt.Errorf("%w: Upcast %q: registry has no format; make it with NewRegistry", ErrInvalid, name)
	case name == "":
		return fmt.Errorf("%w: Upcast %s: empty name", ErrInvalid, ot)
	case fn == nil:
		return fmt.Errorf("%w: Upcast %q rev %d: nil function", ErrInvalid, name, revision)
	}
	decode, err := upcaster(r.format, fn)
	if err != nil {
		return fmt.Errorf("%w: Upcast %q rev %d: %w", ErrInvalid, name, revision, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.load()
	n := s.byName[name]
	if n != nil && n.typ != nil {
		if revision == n.revision {
			return fmt.Errorf("%w: Upcast %q rev %d: that is the current revision of %s", ErrDuplicate, name, revision, n.typ)
		}
		if revision > n.revision {
			return fmt.Errorf("%w: Upcast %q rev %d: not lower than the current revision %d", ErrInvalid, name, revision, n.revision)
		}
	}
	if n != nil && n.upcasts[revision] != nil {
		return fmt.Errorf("%w: Upcast %q rev %d: an upcaster is already registered", ErrDuplicate, name, revision)
	}

	ne := &nameEntry[E]{}
	if n != nil {
		*ne = *n
	}
	ne.upcasts = maps.Clone(ne.upcasts)
	if ne.upcasts == nil {
		ne.upcasts = map[uint32]func([]byte) (E, error){}
	}
	ne.upcasts[revision] = decode
	ns := s.clone()
	ns.byName[name] = ne
	r.state.Store(ns)
	return nil
}

// MustUpcast is like [Upcast] but panics on error, for registries built in
// package-level variables or init functions.
func MustUpcast[Old, E any](r *Registry[E], name string, revision uint32, fn func(Old) (E, error)) {
	if err := Upcast(r, name, revision, fn); err != nil {
		panic(err)
	}
}

// load returns the current state; an empty one for a zero Registry, which
// has none.
func (r *Registry[E]) load() *registryState[E] {
	if s := r.state.Load(); s != nil {
		return s
	}
	return &registryState[E]{}
}

// clone returns a copy of s that a registration can modify.
func (s *registryState[E]) clone() *registryState[E] {
	return &registryState[E]{
		byName: maps.Clone(s.byName),
		byType: maps.Clone(s.byType),
		names:  slices.Clone(s.names),
		small:  slices.Clone(s.small),
	}
}

package shred

import (
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/proto"
)

// Redacted is what a personal string field holds once its subject is
// forgotten. Personal fields of other kinds hold their zero value.
const Redacted = "[redacted]"

// personal describes the personal fields of one protected Go type: a
// struct, or a pointer to one.
type personal struct {
	typ     reflect.Type // the protected type
	st      reflect.Type // the struct type
	ptr     bool
	proto   bool     // a pointer to a generated protobuf message
	fields  []int    // indexes of the personal fields in st
	names   []string // their names
	subject func(any) string
}

var protoMessage = reflect.TypeFor[proto.Message]()

// newPersonal checks that t is a struct or a pointer to one, and that
// fields (none: every exported field) name exported fields of it.
func newPersonal(t reflect.Type, subject func(any) string, fields []string) (*personal, error) {
	p := &personal{typ: t, st: t, subject: subject}
	if t.Kind() == reflect.Pointer {
		p.ptr, p.st = true, t.Elem()
		p.proto = t.Implements(protoMessage)
	}
	if p.st.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct or a pointer to one", t)
	}
	if len(fields) == 0 {
		for i := range p.st.NumField() {
			if f := p.st.Field(i); f.IsExported() {
				p.fields, p.names = append(p.fields, i), append(p.names, f.Name)
			}
		}
		if len(p.fields) == 0 {
			return nil, fmt.Errorf("%s has no exported fields", t)
		}
		return p, nil
	}
	seen := map[string]bool{}
	for _, name := range fields {
		f, ok := p.st.FieldByName(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("%s has no field %q", t, name)
		case len(f.Index) != 1:
			return nil, fmt.Errorf("field %q of %s is promoted from an embedded struct; name a field of %s itself", name, t, p.st)
		case !f.IsExported():
			return nil, fmt.Errorf("field %q of %s is not exported", name, t)
		case seen[name]:
			return nil, fmt.Errorf("field %q of %s is named twice", name, t)
		case p.proto && f.Type.Implements(protoMessage):
			return nil, fmt.Errorf("field %q of %s is a protobuf message; protect its own fields instead", name, t)
		}
		seen[name] = true
		p.fields, p.names = append(p.fields, f.Index[0]), append(p.names, name)
	}
	return p, nil
}

// split returns the plaintext of v's personal fields and a copy of v with
// them zeroed. v is of p's type and not a nil pointer.
func (p *personal) split(v reflect.Value) (plain []byte, stripped reflect.Value, err error) {
	src := v
	if p.ptr {
		src = v.Elem()
	}
	vals := make(map[string]msgpack.RawMessage, len(p.fields))
	for i, fi := range p.fields {
		b, err := msgpack.Marshal(src.Field(fi).Interface())
		if err != nil {
			return nil, reflect.Value{}, fmt.Errorf("personal field %s: %w", p.names[i], err)
		}
		vals[p.names[i]] = b
	}
	if plain, err = msgpack.Marshal(vals); err != nil {
		return nil, reflect.Value{}, err
	}
	var dst reflect.Value // addressable struct
	switch {
	case p.proto:
		stripped = reflect.ValueOf(proto.Clone(v.Interface().(proto.Message)))
		dst = stripped.Elem()
	case p.ptr:
		stripped = reflect.New(p.st)
		dst = stripped.Elem()
		dst.Set(src)
	default:
		dst = reflect.New(p.st).Elem()
		dst.Set(src)
		stripped = dst
	}
	for _, fi := range p.fields {
		f := dst.Field(fi)
		f.Set(reflect.Zero(f.Type()))
	}
	return plain, stripped, nil
}

// settable returns an addressable struct holding v, which is a struct or
// a pointer to one, and the value to return: v itself for a pointer, whose
// struct is changed in place, else the copy.
func settable(v reflect.Value) (st, out reflect.Value, ok bool) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return reflect.Value{}, v, false
		}
		return v.Elem(), v, true
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, v, false
	}
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c, c, true
}

// restore sets the fields of st named in plain, the plaintext split made.
// A name st has no field of (a field removed by a later release) is
// skipped.
func restore(st reflect.Value, plain []byte) error {
	var vals map[string]msgpack.RawMessage
	if err := msgpack.Unmarshal(plain, &vals); err != nil {
		return fmt.Errorf("personal fields: %w", err)
	}
	for name, b := range vals {
		f := st.FieldByName(name)
		if !f.IsValid() || !f.CanSet() {
			continue
		}
		if err := msgpack.Unmarshal(b, f.Addr().Interface()); err != nil {
			return fmt.Errorf("personal field %s: %w", name, err)
		}
	}
	return nil
}

// empty reports whether every personal field of v, of p's type and not a
// nil pointer, holds its zero value.
func (p *personal) empty(v reflect.Value) bool {
	if p.ptr {
		v = v.Elem()
	}
	for _, fi := range p.fields {
		if !v.Field(fi).IsZero() {
			return false
		}
	}
	return true
}

// redact sets p's personal fields of st to their redacted values.
func (p *personal) redact(st reflect.Value) {
	for _, fi := range p.fields {
		f := st.Field(fi)
		if f.Kind() == reflect.String {
			f.SetString(Redacted)
		} else {
			f.Set(reflect.Zero(f.Type()))
		}
	}
}

package shred

import (
	"context"
	"fmt"
	"reflect"

	"github.com/eventsourced-go/eventsourced/binarize"
)

// State is the codec of an entity's state whose personal fields are
// encrypted in snapshots, as [Events] does for events: snapshots are
// copies of personal data too. It wraps the state's revisioned codec and
// is one itself (binarize.RevisionCodec and ContextRevisionCodec), so
// state upcasters keep working.
type State[S any] struct {
	inner binarize.RevisionCodec[S]
	keys  *keyring
	p     *personal
	name  string // the state's Go type, for errors
}

var _ binarize.ContextRevisionCodec[struct{}] = (*State[struct{}])(nil)

// stateAD stands for the event name in the additional data of a state's
// ciphertext. It is not the Go type's name, which a release may change
// (and an upcaster read) while the snapshot's bytes stay.
const stateAD = "\x00state"

// NewState returns the codec that encrypts the fields named (all exported
// fields if none is) of the state S, a struct or a pointer to one, under
// the key of the subject that subject returns for it, and encodes the
// rest with inner, such as a *binarize.Versioned.
func NewState[S any](inner binarize.RevisionCodec[S], keys *Keys, subject func(S) string, fields ...string) (*State[S], error) {
	t := reflect.TypeFor[S]()
	switch {
	case inner == nil:
		return nil, fmt.Errorf("%w: NewState %s: nil state codec", ErrInvalid, t)
	case keys == nil:
		return nil, fmt.Errorf("%w: NewState %s: nil Keys", ErrInvalid, t)
	case subject == nil:
		return nil, fmt.Errorf("%w: NewState %s: nil subject function", ErrInvalid, t)
	}
	p, err := newPersonal(t, func(v any) string { return subject(v.(S)) }, fields)
	if err != nil {
		return nil, fmt.Errorf("%w: NewState: %w", ErrInvalid, err)
	}
	return &State[S]{inner: inner, keys: keys.ring, p: p, name: t.String()}, nil
}

// Revision returns the inner codec's revision.
func (s *State[S]) Revision() uint32 { return s.inner.Revision() }

// Encode returns the bytes of v with its personal fields encrypted, under
// context.Background bounded by the key timeout. A state whose subject is
// "" is an error ([ErrNoSubject]) unless its personal fields are all zero,
// as an entity's initial state usually is: then it is encoded as it is.
func (s *State[S]) Encode(v S) ([]byte, error) {
	rv := reflect.ValueOf(any(v))
	if s.p.ptr && rv.IsNil() {
		return s.inner.Encode(v) // the inner codec names the nil pointer
	}
	if s.p.subject(rv.Interface()) == "" && s.p.empty(rv) {
		// A state without a subject and without personal data, such as
		// an entity's initial state: nothing to protect.
		return s.inner.Encode(v)
	}
	plain, stripped, subject, err := splitValue(s.p, rv)
	if err != nil {
		return nil, fmt.Errorf("shred: encode %s: %w", s.name, err)
	}
	inner, err := s.inner.Encode(stripped.Interface().(S))
	if err != nil {
		return nil, err
	}
	return seal(context.Background(), s.keys, subject, plain, inner, stateAD, s.Revision())
}

// Decode reads bytes of the current revision.
func (s *State[S]) Decode(data []byte) (S, error) {
	return s.DecodeRevisionContext(context.Background(), s.Revision(), data)
}

// DecodeRevision is DecodeRevisionContext under context.Background.
func (s *State[S]) DecodeRevision(revision uint32, data []byte) (S, error) {
	return s.DecodeRevisionContext(context.Background(), revision, data)
}

// DecodeRevisionContext returns the state data holds, written at revision,
// through the inner codec (and its upcasters), with its personal fields
// decrypted, or redacted if the subject was forgotten, as
// [Events.DecodeContext] does.
func (s *State[S]) DecodeRevisionContext(ctx context.Context, revision uint32, data []byte) (S, error) {
	if !protectedBytes(data) {
		return s.inner.DecodeRevision(revision, data)
	}
	var zero S
	env, err := parseEnvelope(data)
	if err != nil {
		return zero, &binarize.DecodeError{Name: s.name, Revision: revision, Size: len(data), Err: err}
	}
	v, err := s.inner.DecodeRevision(revision, env.inner)
	if err != nil {
		return zero, err
	}
	out, keyErr, err := open(ctx, s.keys, &env, stateAD, revision, reflect.ValueOf(any(v)), func(t reflect.Type) *personal {
		if t == s.p.typ {
			return s.p
		}
		return nil
	})
	if keyErr != nil {
		return zero, keyErr
	}
	if err != nil {
		return zero, &binarize.DecodeError{Name: s.name, Revision: revision, Size: len(data), Err: err}
	}
	return out.Interface().(S), nil
}

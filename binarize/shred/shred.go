package shred

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/keystore"
)

var (
	// ErrInvalid reports a bad argument: a nil codec or key store, a bad
	// option, or a [Protect] of a type that is not a struct, of a field it
	// does not have or does not export.
	ErrInvalid = errors.New("shred: invalid argument")
	// ErrNoSubject reports a value of a protected type whose subject
	// function returned "": there is no key to encrypt it with.
	ErrNoSubject = errors.New("shred: no subject")
)

// Defaults of the options.
const (
	DefaultCacheTTL   = 30 * time.Second
	DefaultKeyTimeout = 10 * time.Second
	DefaultCacheSize  = 10000
)

// config is what the options set.
type config struct {
	ttl       time.Duration
	timeout   time.Duration
	cacheSize int
}

// Option configures [NewKeys].
type Option func(*config) error

// WithCacheTTL sets how long a subject's key is kept in the process after
// it was read from the key store (default [DefaultCacheTTL]; 0 caches
// nothing). After [Events.Forget] in one process, another process that
// cached the key goes on decrypting the subject's data for at most this
// long; data it encrypts meanwhile is under the forgotten key, so it is
// unreadable too.
func WithCacheTTL(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: WithCacheTTL(%v): must be >= 0", ErrInvalid, d)
		}
		c.ttl = d
		return nil
	}
}

// WithKeyTimeout bounds each call to the key store (default
// [DefaultKeyTimeout]), within the caller's context.
func WithKeyTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithKeyTimeout(%v): must be > 0", ErrInvalid, d)
		}
		c.timeout = d
		return nil
	}
}

// WithCacheSize bounds the keys, and separately the IDs of forgotten keys,
// kept in the process (default [DefaultCacheSize]).
func WithCacheSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithCacheSize(%d): must be >= 1", ErrInvalid, n)
		}
		c.cacheSize = n
		return nil
	}
}

func newConfig(opts []Option) (config, error) {
	c := config{ttl: DefaultCacheTTL, timeout: DefaultKeyTimeout, cacheSize: DefaultCacheSize}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Keys gives the codecs of this package the data keys of subjects: it
// reads them from a key store and keeps them in the process for a while
// ([WithCacheTTL]). Share one Keys between the [Events] and [State] codecs
// of a process, so that [Keys.Forget] clears the keys of both.
type Keys struct {
	ring *keyring
}

// NewKeys returns the Keys of store.
func NewKeys(store keystore.Store, opts ...Option) (*Keys, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: NewKeys with a nil key store", ErrInvalid)
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Keys{ring: newKeyring(store, c)}, nil
}

// Forget deletes the subject's key from the key store and from this
// process's cache: the subject's personal fields decode redacted from then
// on, in this process at once, in others once their cache of the key
// expires ([WithCacheTTL]). Entities of the subject that are live keep
// their decrypted state in memory until they recover again: passivate or
// restart them. A later event of the subject gets a new key. Forgetting a
// subject that has no key is not an error.
func (k *Keys) Forget(ctx context.Context, subject string) error {
	if err := keystore.ValidateSubject(subject); err != nil {
		return fmt.Errorf("shred: forget: %w", err)
	}
	return k.ring.forget(ctx, subject)
}

// Events is an event codec that encrypts the personal fields of the event
// types marked with [Protect], each under the data key of the event's
// subject, and hands the rest to an inner codec, usually a
// *binarize.Registry. Events of other types pass through unchanged, and
// bytes written before a type was protected still decode.
//
// It implements binarize.ContextEventCodec: the entity runtime encodes and
// decodes under the command's and the recovery's context. Encode and Decode
// use context.Background, bounded by the key timeout.
type Events[E any] struct {
	inner binarize.EventCodec[E]
	keys  *keyring
	// mu serializes Protect calls, each of which replaces types.
	mu    sync.Mutex
	types atomic.Pointer[map[reflect.Type]*personal]
}

var _ binarize.ContextEventCodec[any] = (*Events[any])(nil)

// NewEvents returns the codec that protects events of inner with keys.
func NewEvents[E any](inner binarize.EventCodec[E], keys *Keys) (*Events[E], error) {
	switch {
	case inner == nil:
		return nil, fmt.Errorf("%w: NewEvents with a nil event codec", ErrInvalid)
	case keys == nil:
		return nil, fmt.Errorf("%w: NewEvents with nil Keys", ErrInvalid)
	}
	ev := &Events[E]{inner: inner, keys: keys.ring}
	ev.types.Store(&map[reflect.Type]*personal{})
	return ev, nil
}

// Protect marks the event type T as personal data: the fields named (all
// exported fields if none is) are encrypted under the key of the subject
// that subject returns for the event, such as its customer id. T is a
// struct or a pointer to one, a generated protobuf message among them;
// the fields may be of any type the msgpack format encodes, except
// protobuf messages (protect the fields of the inner message's own type).
//
// The subject is stored in the clear beside the ciphertext, so it should
// be an identifier (a customer id), not personal data itself.
func Protect[T, E any](ev *Events[E], subject func(T) string, fields ...string) error {
	t := reflect.TypeFor[T]()
	switch {
	case ev == nil:
		return fmt.Errorf("%w: Protect %s: nil Events", ErrInvalid, t)
	case subject == nil:
		return fmt.Errorf("%w: Protect %s: nil subject function", ErrInvalid, t)
	}
	if et := reflect.TypeFor[E](); et.Kind() == reflect.Interface && !t.Implements(et) || et.Kind() != reflect.Interface && et != t {
		return fmt.Errorf("%w: Protect %s: not an event type of %s", ErrInvalid, t, reflect.TypeFor[E]())
	}
	p, err := newPersonal(t, func(v any) string { return subject(v.(T)) }, fields)
	if err != nil {
		return fmt.Errorf("%w: Protect: %w", ErrInvalid, err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	m := *ev.types.Load()
	if _, dup := m[t]; dup {
		return fmt.Errorf("%w: Protect %s: already protected", ErrInvalid, t)
	}
	m = maps.Clone(m)
	m[t] = p
	ev.types.Store(&m)
	return nil
}

// MustProtect is like [Protect] but panics on error, for codecs built at
// start-up.
func MustProtect[T, E any](ev *Events[E], subject func(T) string, fields ...string) {
	if err := Protect(ev, subject, fields...); err != nil {
		panic(err)
	}
}

// Encode is EncodeContext under context.Background.
func (ev *Events[E]) Encode(e E) (string, uint32, []byte, error) {
	return ev.EncodeContext(context.Background(), e)
}

// EncodeContext returns the name, revision and bytes of e. For a protected
// type it gets the subject's key from the key store (creating it on first
// use) unless it is cached; if the store fails, so does EncodeContext, and
// nothing is written in the clear.
func (ev *Events[E]) EncodeContext(ctx context.Context, e E) (string, uint32, []byte, error) {
	v := reflect.ValueOf(any(e))
	p := ev.personal(v)
	if p == nil {
		return ev.inner.Encode(e)
	}
	plain, stripped, subject, err := splitValue(p, v)
	if err != nil {
		return "", 0, nil, fmt.Errorf("shred: encode %s: %w", p.typ, err)
	}
	name, rev, inner, err := ev.inner.Encode(stripped.Interface().(E))
	if err != nil {
		return "", 0, nil, err
	}
	data, err := seal(ctx, ev.keys, subject, plain, inner, name, rev)
	if err != nil {
		return "", 0, nil, err
	}
	return name, rev, data, nil
}

// Decode is DecodeContext under context.Background.
func (ev *Events[E]) Decode(name string, revision uint32, data []byte) (E, error) {
	return ev.DecodeContext(context.Background(), name, revision, data)
}

// DecodeContext returns the event that name, revision and data describe,
// with its personal fields decrypted; if the subject was forgotten, with
// them redacted ([Redacted] for strings, the zero value for the rest).
// A key store that fails is an error; a key that is gone is not. Bytes
// that fail authentication under the subject's key are an error.
func (ev *Events[E]) DecodeContext(ctx context.Context, name string, revision uint32, data []byte) (E, error) {
	if !protectedBytes(data) {
		return ev.inner.Decode(name, revision, data)
	}
	var zero E
	env, err := parseEnvelope(data)
	if err != nil {
		return zero, &binarize.DecodeError{Name: name, Revision: revision, Size: len(data), Err: err}
	}
	e, err := ev.inner.Decode(name, revision, env.inner)
	if err != nil {
		return zero, err
	}
	v, keyErr, err := open(ctx, ev.keys, &env, name, revision, reflect.ValueOf(any(e)), func(t reflect.Type) *personal { return (*ev.types.Load())[t] })
	if keyErr != nil {
		return zero, keyErr
	}
	if err != nil {
		return zero, &binarize.DecodeError{Name: name, Revision: revision, Size: len(data), Err: err}
	}
	return v.Interface().(E), nil
}

// personal returns the protection of v's type, nil if it has none or v is
// a nil pointer (the inner codec reports that).
func (ev *Events[E]) personal(v reflect.Value) *personal {
	if !v.IsValid() {
		return nil
	}
	m := *ev.types.Load()
	if len(m) == 0 {
		return nil
	}
	p := m[v.Type()]
	if p == nil || p.ptr && v.IsNil() {
		return nil
	}
	return p
}

// splitValue returns v's subject, the plaintext of its personal fields and
// v with them zeroed.
func splitValue(p *personal, v reflect.Value) (plain []byte, stripped reflect.Value, subject string, err error) {
	subject = p.subject(v.Interface())
	if subject == "" {
		return nil, reflect.Value{}, "", ErrNoSubject
	}
	if err := keystore.ValidateSubject(subject); err != nil {
		return nil, reflect.Value{}, "", err
	}
	plain, stripped, err = p.split(v)
	return plain, stripped, subject, err
}

// seal encrypts plain under the subject's key and returns the envelope of
// it and inner.
func seal(ctx context.Context, keys *keyring, subject string, plain, inner []byte, name string, rev uint32) ([]byte, error) {
	k, err := keys.forEncrypt(ctx, subject)
	if err != nil {
		return nil, err
	}
	env := envelope{subject: subject, keyID: k.id, nonce: make([]byte, nonceSize), inner: inner}
	if _, err := rand.Read(env.nonce); err != nil {
		return nil, fmt.Errorf("shred: nonce: %w", err)
	}
	env.sealed = k.aead.Seal(nil, env.nonce, plain, additionalData(name, rev, &env))
	return env.appendTo(make([]byte, 0, len(magic)+len(subject)+len(k.id)+nonceSize+len(env.sealed)+len(inner)+8)), nil
}

// open restores the personal fields of v, decoded from env's inner bytes,
// from env's ciphertext, or redacts them if the key is gone. protection
// returns how a type is protected, for the redaction. keyErr is the key
// store's failure, which says nothing of the bytes; err, what is wrong
// with them.
func open(ctx context.Context, keys *keyring, env *envelope, name string, rev uint32, v reflect.Value, protection func(reflect.Type) *personal) (out reflect.Value, keyErr, err error) {
	st, out, ok := settable(v)
	if !ok {
		return v, nil, nil
	}
	k, keyErr := keys.forDecrypt(ctx, env.subject, env.keyID)
	if keyErr != nil {
		return v, keyErr, nil
	}
	if k == nil {
		if p := protection(v.Type()); p != nil {
			p.redact(st)
		}
		return out, nil, nil
	}
	plain, err := k.aead.Open(nil, env.nonce, env.sealed, additionalData(name, rev, env))
	if err != nil {
		return v, nil, fmt.Errorf("shred: personal fields of subject %s fail authentication under key %s: the bytes were altered or written with another key: %w", env.subject, env.keyID, err)
	}
	if err := restore(st, plain); err != nil {
		return v, nil, err
	}
	return out, nil, nil
}

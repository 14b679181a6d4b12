package natslog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/keystore"
)

// Compile-time checks that KeyStore provides the contract and its optional
// capability.
var (
	_ keystore.Store  = (*KeyStore)(nil)
	_ keystore.Closer = (*KeyStore)(nil)
)

// keyValueVersion is the first byte of every stored key; see [KeyStore].
const keyValueVersion = 1

// maxKeyAttempts bounds the rounds of one GetOrCreate. A second round is
// needed only when another process created the subject's key between this
// one's read and its create; a third only when that key was forgotten
// again before it could be read. The bound guards against a livelock of
// creates and forgets.
const maxKeyAttempts = 16

// KeyStore is a [keystore.Store] on a JetStream KV bucket (default
// [DefaultKeyBucket], see [WithKeyBucket]). It also implements
// [keystore.Closer]. Create it with [NewKeyStore], and its bucket with
// [KeyStore.Setup].
//
// A subject's key is kept under the KV key that is the subject escaped as
// event subject tokens are: letters, digits, '_' and '-' stand for
// themselves and every other byte is '=' and two upper-case hex digits, so
// "user@x.io" is the key "user=40x=2Eio". Distinct subjects have distinct
// keys, and a subject of [keystore.MaxSubjectLen] bytes fits.
//
// The value is one byte of format version (1), one byte with the length of
// the key's ID, the ID, and the [keystore.KeySize] bytes of material. A
// value that is not of this form fails the call with an error naming the
// subject and what is wrong, never a key made of whatever bytes were there.
//
// Each key is written once, by a create that expects no message on its
// subject, so the bucket never holds two values of one subject. Forget
// deletes that message with the server's secure delete, which overwrites
// it in the stream's storage (each replica does so as it applies the
// delete), rather than only marking it deleted. So the
// bucket is set up unlike a default KV bucket: it keeps one value per key
// (history 1), allows deleting a message (a default bucket denies it and
// keeps purged data until its storage is compacted), and does not serve
// direct gets, which any replica may answer from a state that lags behind:
// every Get goes to the stream's leader, so no process finds a key after
// Forget returned. Stream snapshots and server backups taken before a
// Forget still hold the key: expire them as you would a database backup.
type KeyStore struct {
	js        jetstream.JetStream
	bucket    string
	subject   string // the bucket's subject prefix, "$KV.<bucket>."
	replicas  int
	storage   jetstream.StorageType
	timeout   time.Duration
	watch     *connWatch
	closed    atomic.Bool
	setupLock sync.Mutex // serializes Setup and the first lookup
	handles   atomic.Pointer[keyBucket]
}

// keyBucket is what a KeyStore works with once it found its bucket.
type keyBucket struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

// NewKeyStore returns a store on the KV bucket the options name (default
// [DefaultKeyBucket]). It takes [WithKeyBucket], [WithReplicas] and
// [WithStorage] (for [KeyStore.Setup]), [WithTimeout] and [WithLogger],
// and refuses the others. It does not touch the server: the first call
// looks the bucket up, and fails with [ErrNotSetUp] if Setup has not
// created it. It starts a goroutine that follows the connection's status,
// so that calls fail at once when the connection drops (see "Waiting and
// connection loss" in the package documentation); Close stops it.
func NewKeyStore(js jetstream.JetStream, opts ...Option) (*KeyStore, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: nil JetStream context", ErrInvalidOption)
	}
	cfg, err := newConfig(forKeys, opts)
	if err != nil {
		return nil, err
	}
	timeout := cfg.timeout
	if timeout == 0 {
		timeout = defaultSetupTimeout(js)
	}
	return &KeyStore{
		js:       js,
		bucket:   cfg.keyBucket,
		subject:  "$KV." + cfg.keyBucket + ".",
		replicas: cfg.replicas,
		storage:  cfg.storage,
		timeout:  timeout,
		watch:    watchConn(js.Conn(), "natslog.KeyStore", cfg.logger, nil),
	}, nil
}

// KeyStreamConfig returns the configuration [KeyStore.Setup] gives the
// stream of a key bucket: that of a KV bucket with history 1, except that
// deleting a message is allowed and direct gets are not (see [KeyStore]).
// It is exported so deployments that manage streams elsewhere can see what
// a KeyStore expects.
func KeyStreamConfig(opts ...Option) (jetstream.StreamConfig, error) {
	cfg, err := newConfig(forKeys, opts)
	if err != nil {
		return jetstream.StreamConfig{}, err
	}
	return keyStreamConfig(cfg.keyBucket, cfg.replicas, cfg.storage), nil
}

func keyStreamConfig(bucket string, replicas int, storage jetstream.StorageType) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              "KV_" + bucket,
		Description:       "eventsourced data keys: key <escaped subject>, value <version 1><ID length><ID><material>",
		Subjects:          []string{"$KV." + bucket + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		MaxMsgsPerSubject: 1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxConsumers:      -1,
		Duplicates:        2 * time.Minute,
		Storage:           storage,
		Replicas:          replicas,
		AllowRollup:       true,
		DenyDelete:        false,
		AllowDirect:       false,
	}
}

// checkKeyStream says what is wrong with the configuration of a key
// bucket's stream, nil if nothing.
func checkKeyStream(bucket string, info *jetstream.StreamInfo) error {
	if info == nil {
		return fmt.Errorf("%w: key bucket %q: no stream information", ErrNotSetUp, bucket)
	}
	c := info.Config
	switch {
	case c.MaxMsgsPerSubject != 1:
		return fmt.Errorf("%w: key bucket %q keeps %d values per key, want 1: a forgotten key could survive as history; KeyStore.Setup fixes it", ErrNotSetUp, bucket, c.MaxMsgsPerSubject)
	case c.DenyDelete:
		return fmt.Errorf("%w: key bucket %q denies deleting messages, which Forget needs; KeyStore.Setup fixes it", ErrNotSetUp, bucket)
	case c.AllowDirect:
		return fmt.Errorf("%w: key bucket %q serves direct gets, which a lagging replica may answer with a forgotten key; KeyStore.Setup fixes it", ErrNotSetUp, bucket)
	}
	return nil
}

// Setup creates the key bucket, or updates it to the configuration
// [KeyStreamConfig] describes. It is idempotent and safe to run from
// several processes at once: call it at deployment or at every start. It
// reports [ErrNoJetStream] for a server without JetStream, and
// [ErrNotSetUp] for an existing bucket that denies deleting messages, as
// one made with default KV settings does: the server does not let a
// bucket change that. Changing the storage of an existing bucket is
// refused by the server too.
func (s *KeyStore) Setup(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	s.setupLock.Lock()
	defer s.setupLock.Unlock()
	err := s.watch.do(ctx, func(ctx context.Context) error {
		// The server refuses to let a stream that denies deletes allow
		// them, so a bucket made with KV defaults cannot be fixed: say so
		// rather than pass on the server's words.
		if old, err := s.js.Stream(ctx, "KV_"+s.bucket); err == nil {
			if info := old.CachedInfo(); info != nil && info.Config.DenyDelete {
				return fmt.Errorf("%w: key bucket %q exists and denies deleting messages, which Forget needs and the server does not let a bucket change: remove the bucket (after moving its keys) or use another one (WithKeyBucket)", ErrNotSetUp, s.bucket)
			}
		} else if !errNotFound(err) {
			if isNoJetStream(err) {
				return fmt.Errorf("%w (server %s): %w", ErrNoJetStream, s.js.Conn().ConnectedServerVersion(), err)
			}
			return err
		}
		stream, err := s.js.CreateOrUpdateStream(ctx, keyStreamConfig(s.bucket, s.replicas, s.storage))
		if err != nil {
			if isNoJetStream(err) {
				return fmt.Errorf("%w (server %s): %w", ErrNoJetStream, s.js.Conn().ConnectedServerVersion(), err)
			}
			return err
		}
		if err := checkKeyStream(s.bucket, stream.CachedInfo()); err != nil {
			return err
		}
		kv, err := s.js.KeyValue(ctx, s.bucket)
		if err != nil {
			return err
		}
		s.handles.Store(&keyBucket{kv: kv, stream: stream})
		return nil
	})
	if err != nil {
		return fmt.Errorf("natslog: set up key bucket %q: %w", s.bucket, err)
	}
	return nil
}

// open returns the bucket, looking it up the first time. It is called
// under a ctx bound to the connection.
func (s *KeyStore) open(ctx context.Context) (*keyBucket, error) {
	if h := s.handles.Load(); h != nil {
		return h, nil
	}
	s.setupLock.Lock()
	defer s.setupLock.Unlock()
	if h := s.handles.Load(); h != nil {
		return h, nil
	}
	stream, err := s.js.Stream(ctx, "KV_"+s.bucket)
	switch {
	case err != nil && errNotFound(err):
		return nil, fmt.Errorf("%w: key bucket %q does not exist; KeyStore.Setup creates it", ErrNotSetUp, s.bucket)
	case err != nil && isNoJetStream(err):
		return nil, fmt.Errorf("%w: looking up key bucket %q: %w", ErrNoJetStream, s.bucket, err)
	case err != nil:
		return nil, fmt.Errorf("look up key bucket %q: %w", s.bucket, err)
	}
	if err := checkKeyStream(s.bucket, stream.CachedInfo()); err != nil {
		return nil, err
	}
	kv, err := s.js.KeyValue(ctx, s.bucket)
	if err != nil {
		return nil, fmt.Errorf("look up key bucket %q: %w", s.bucket, err)
	}
	h := &keyBucket{kv: kv, stream: stream}
	s.handles.Store(h)
	return h, nil
}

// call runs f with the bucket, under ctx bounded by the store's timeout
// and by the connection, and wraps its error with what and the subject.
func (s *KeyStore) call(ctx context.Context, what, subject string, f func(ctx context.Context, b *keyBucket) error) error {
	if err := keystore.ValidateSubject(subject); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()
	err := s.watch.do(ctx, func(ctx context.Context) error {
		b, err := s.open(ctx)
		if err != nil {
			return err
		}
		return f(ctx, b)
	})
	if err == nil {
		return nil
	}
	return fmt.Errorf("natslog: %s key of subject %s: %w", what, eventlog.FormatID(subject), unanswered(err))
}

// Get implements [keystore.Store]: one read from the stream's leader.
func (s *KeyStore) Get(ctx context.Context, subject string) (keystore.Key, bool, error) {
	var k keystore.Key
	var found bool
	err := s.call(ctx, "get", subject, func(ctx context.Context, b *keyBucket) error {
		var err error
		k, found, err = s.read(ctx, b, subject)
		return err
	})
	if err != nil {
		return keystore.Key{}, false, err
	}
	return k, found, nil
}

// read reads the subject's key; found is false if it has none.
func (s *KeyStore) read(ctx context.Context, b *keyBucket, subject string) (k keystore.Key, found bool, err error) {
	e, err := b.kv.Get(ctx, encodeToken(subject))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		// A delete or purge marker, from a tool such as "nats kv del",
		// says the subject has no key, as Forget's secure delete does.
		return keystore.Key{}, false, nil
	case err != nil:
		return keystore.Key{}, false, err
	}
	k, err = decodeKeyValue(e.Value())
	if err != nil {
		return keystore.Key{}, false, fmt.Errorf("the value at revision %d: %w", e.Revision(), err)
	}
	return k, true, nil
}

// GetOrCreate implements [keystore.Store]. It reads first, so a subject
// that has a key costs one round trip. One without a key costs a second:
// a create that succeeds only if the subject has no message, so when
// several processes race, one create wins and the others read its key.
func (s *KeyStore) GetOrCreate(ctx context.Context, subject string) (keystore.Key, error) {
	var k keystore.Key
	err := s.call(ctx, "get or create", subject, func(ctx context.Context, b *keyBucket) error {
		for range maxKeyAttempts {
			got, found, err := s.read(ctx, b, subject)
			if err != nil || found {
				k = got
				return err
			}
			fresh, err := keystore.NewKey()
			if err != nil {
				return err
			}
			value, err := encodeKeyValue(fresh)
			if err != nil {
				return err
			}
			_, err = b.kv.Create(ctx, encodeToken(subject), value)
			clear(value)
			switch {
			case err == nil:
				k = fresh
				return nil
			case errors.Is(err, jetstream.ErrKeyExists):
				clear(fresh.Material)
				continue // another process created it: read that one
			}
			clear(fresh.Material)
			return err
		}
		return fmt.Errorf("gave up after %d rounds, each racing a concurrent create or forget of the subject", maxKeyAttempts)
	})
	if err != nil {
		return keystore.Key{}, err
	}
	return k, nil
}

// Forget implements [keystore.Store]: it finds the subject's message and
// deletes it securely (see [KeyStore]), leaving no marker behind, which
// would keep the subject's name in the bucket.
func (s *KeyStore) Forget(ctx context.Context, subject string) error {
	return s.call(ctx, "forget", subject, func(ctx context.Context, b *keyBucket) error {
		subj := s.subject + encodeToken(subject)
		m, err := b.stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		delErr := b.stream.SecureDeleteMsg(ctx, m.Sequence)
		if delErr == nil {
			return nil
		}
		// A concurrent Forget may have deleted the message first: that
		// is success, whatever the server's words for it. Only a message
		// still there means the delete failed.
		again, err := b.stream.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return nil
		case err != nil:
			return errors.Join(delErr, err)
		case again.Sequence != m.Sequence:
			return nil // forgotten and created again meanwhile
		}
		return fmt.Errorf("secure delete of message %d: %w", m.Sequence, delErr)
	})
}

// Close implements [keystore.Closer]. It does not close the connection.
// Afterwards every method returns [keystore.ErrClosed], Close included.
func (s *KeyStore) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return keystore.ErrClosed
	}
	s.watch.close()
	return nil
}

func (s *KeyStore) ready(ctx context.Context) error {
	if s.closed.Load() {
		return keystore.ErrClosed
	}
	return ctx.Err()
}

// encodeKeyValue returns the stored form of k; see [KeyStore].
func encodeKeyValue(k keystore.Key) ([]byte, error) {
	if k.ID == "" || len(k.ID) > 255 || len(k.Material) != keystore.KeySize {
		return nil, fmt.Errorf("cannot store key ID %q (%d bytes) with %d bytes of material: want an ID of 1 to 255 bytes and %d bytes", k.ID, len(k.ID), len(k.Material), keystore.KeySize)
	}
	b := make([]byte, 0, 2+len(k.ID)+keystore.KeySize)
	b = append(b, keyValueVersion, byte(len(k.ID)))
	b = append(b, k.ID...)
	return append(b, k.Material...), nil
}

// decodeKeyValue reverses [encodeKeyValue], saying what is wrong with a
// value that is not a stored key.
func decodeKeyValue(v []byte) (keystore.Key, error) {
	switch {
	case len(v) == 0:
		return keystore.Key{}, errors.New("empty, not a stored key")
	case v[0] != keyValueVersion:
		return keystore.Key{}, fmt.Errorf("format version %d, want %d", v[0], keyValueVersion)
	case len(v) < 2 || v[1] == 0:
		return keystore.Key{}, fmt.Errorf("%d bytes with no key ID", len(v))
	}
	idLen := int(v[1])
	if want := 2 + idLen + keystore.KeySize; len(v) != want {
		return keystore.Key{}, fmt.Errorf("%d bytes, want %d for a %d-byte key ID and %d bytes of material", len(v), want, idLen, keystore.KeySize)
	}
	id := string(v[2 : 2+idLen])
	material := make([]byte, keystore.KeySize)
	copy(material, v[2+idLen:])
	return keystore.Key{ID: id, Material: material}, nil
}

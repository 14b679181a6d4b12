package natsprojection

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/projection"
)

// Compile-time checks that Store is a projection.OffsetStore and a
// projection.OffsetLister.
var (
	_ projection.OffsetStore  = (*Store)(nil)
	_ projection.OffsetLister = (*Store)(nil)
)

// DefaultBucket is the KV bucket's name unless [WithBucket] says otherwise.
const DefaultBucket = "projection_offsets"

// Store is a [projection.OffsetStore] in a JetStream key-value bucket: one
// key per projection name, the offset as its decimal value. Commit runs the
// handler, then updates the key if its revision has not changed since it
// read it: at least once. Create it with [New].
type Store struct {
	kv jetstream.KeyValue
	// controls is the bucket of control records (see [Store.LoadControl]).
	controls jetstream.KeyValue

	// mu guards last.
	mu sync.Mutex
	// last caches, by name, the offset and revision this Store last read or
	// wrote, so a runner's commits cost one round trip, not two. A stale
	// entry is harmless: the update's revision check catches it.
	last map[string]entry

	// beforeOffset, if set, runs between the handler and the offset update;
	// tests use it to kill a commit there.
	beforeOffset func(ctx context.Context) error
}

// Option configures [New].
type Option func(*config) error

type config struct {
	bucket        string
	controlBucket string // New's only
	replicas      int
	storage       jetstream.StorageType
}

// WithBucket names the KV bucket (default [DefaultBucket] for [New],
// [DefaultDeadLetterBucket] for [NewDeadLetters]). Bucket names are
// letters, digits, '-' and '_'.
func WithBucket(name string) Option {
	return func(c *config) error {
		if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isTokenRune(r) }) >= 0 {
			return fmt.Errorf("%w: natsprojection: WithBucket(%q): use letters, digits, '-' and '_'", projection.ErrInvalid, name)
		}
		c.bucket = name
		return nil
	}
}

// WithReplicas sets the bucket's replica count (default 1) when New creates it.
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("%w: natsprojection: WithReplicas(%d): must be 1..5", projection.ErrInvalid, n)
		}
		c.replicas = n
		return nil
	}
}

// WithMemoryStorage keeps the bucket in server memory instead of files.
func WithMemoryStorage() Option {
	return func(c *config) error {
		c.storage = jetstream.MemoryStorage
		return nil
	}
}

// New returns a Store in the bucket of js, creating the bucket if it does
// not exist, and likewise the bucket of control records
// ([DefaultControlBucket] unless [WithControlBucket] says otherwise).
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Store, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: natsprojection: nil JetStream", projection.ErrInvalid)
	}
	cfg := config{bucket: DefaultBucket, controlBucket: DefaultControlBucket, replicas: 1, storage: jetstream.FileStorage}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	kv, err := bucket(ctx, js, cfg, "eventsourced projection offsets")
	if err != nil {
		return nil, err
	}
	// A bucket of their own, not keys beside the offsets: whatever lists
	// the offsets' keys finds projection names only.
	ccfg := cfg
	ccfg.bucket = cfg.controlBucket
	controls, err := bucket(ctx, js, ccfg, "eventsourced projection control records")
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, controls: controls, last: map[string]entry{}}, nil
}

// bucket returns the bucket cfg names, creating it if it does not exist.
func bucket(ctx context.Context, js jetstream.JetStream, cfg config, description string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.bucket,
			Description: description,
			History:     1,
			Replicas:    cfg.replicas,
			Storage:     cfg.storage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.bucket) // another process created it
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsprojection: bucket %s: %w", cfg.bucket, err)
	}
	return kv, nil
}

// entry is a cached offset and the revision of the key that held it.
type entry struct{ offset, revision uint64 }

func (s *Store) cached(name string) (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.last[name]
	return e, ok
}

func (s *Store) remember(name string, e entry, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.last[name] = e
	} else {
		delete(s.last, name)
	}
}

// Load implements [projection.OffsetStore].
func (s *Store) Load(ctx context.Context, name string) (uint64, error) {
	off, _, err := s.get(ctx, name)
	return off, err
}

// get returns the offset of name and the key's revision, 0 and 0 if the key
// does not exist.
func (s *Store) get(ctx context.Context, name string) (offset, revision uint64, err error) {
	e, err := s.kv.Get(ctx, key(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		s.remember(name, entry{}, true)
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("natsprojection: load offset of %s: %w", name, err)
	}
	off, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("natsprojection: offset of %s is %q: %w", name, e.Value(), err)
	}
	s.remember(name, entry{off, e.Revision()}, true)
	return off, e.Revision(), nil
}

// Offsets implements [projection.OffsetLister]: one request for the
// bucket's keys, then one per key for its value and time.
func (s *Store) Offsets(ctx context.Context) ([]projection.Offset, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsprojection: list offsets: %w", err)
	}
	// The channel closes once every key was listed, ending the lister.
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	out := make([]projection.Offset, 0, len(keys))
	for _, k := range keys {
		name, err := nameOf(k)
		if err != nil {
			return nil, fmt.Errorf("natsprojection: list offsets: key %q: %w", k, err)
		}
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("natsprojection: load offset of %s: %w", name, err)
		}
		off, err := strconv.ParseUint(string(e.Value()), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("natsprojection: offset of %s is %q: %w", name, e.Value(), err)
		}
		out = append(out, projection.Offset{Name: name, Position: off, Updated: e.Created()})
	}
	slices.SortFunc(out, func(a, b projection.Offset) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Commit implements [projection.OffsetStore]: it checks the offset is
// from (reading it and its revision unless this Store wrote or read it
// last), runs handle, and updates the key only if its revision is
// unchanged. A crash after handle and before the update leaves the offset
// at from: the batch is delivered again.
func (s *Store) Commit(ctx context.Context, name string, from, to uint64, handle func(ctx context.Context) error) error {
	c, ok := s.cached(name)
	cur, rev := c.offset, c.revision
	if !ok || cur != from {
		var err error
		if cur, rev, err = s.get(ctx, name); err != nil {
			return err
		}
	}
	if cur != from {
		return fmt.Errorf("natsprojection: commit %s: %w: at %d, not %d", name, projection.ErrOffsetMoved, cur, from)
	}
	if err := handle(ctx); err != nil {
		return err
	}
	if s.beforeOffset != nil {
		if err := s.beforeOffset(ctx); err != nil {
			return err
		}
	}
	val := []byte(strconv.FormatUint(to, 10))
	var err error
	if rev == 0 {
		rev, err = s.kv.Create(ctx, key(name), val)
	} else {
		rev, err = s.kv.Update(ctx, key(name), val, rev)
	}
	if err != nil {
		s.remember(name, entry{}, false)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("natsprojection: commit %s: %w: %w", name, projection.ErrOffsetMoved, err)
		}
		return fmt.Errorf("natsprojection: commit %s: save offset: %w", name, err)
	}
	s.remember(name, entry{to, rev}, true)
	return nil
}

// Reset implements [projection.OffsetStore]: it sets the offset to 0, then
// runs clear. They are not atomic, so the order is the safe one: if clear
// fails, or the process dies before it ends, the projection rebuilds from
// the first event over a read model not yet (fully) emptied, which an
// at-least-once handler tolerates; the opposite order could leave an
// emptied read model behind the old offset, silently missing every event
// before it. Retry a Reset that failed.
func (s *Store) Reset(ctx context.Context, name string, clear func(ctx context.Context) error) error {
	rev, err := s.kv.Put(ctx, key(name), []byte("0"))
	if err != nil {
		s.remember(name, entry{}, false)
		return fmt.Errorf("natsprojection: reset %s: %w", name, err)
	}
	s.remember(name, entry{0, rev}, true)
	if clear != nil {
		if err := clear(ctx); err != nil {
			return fmt.Errorf("natsprojection: reset %s: offset set to 0, clear failed: %w", name, err)
		}
	}
	return nil
}

// encodedPrefix marks keys that hold an encoded projection name.
const encodedPrefix = "b64_"

// key maps a projection name to a KV key: itself if it is a valid key made
// of letters, digits, '-', '_' and inner dots, else a base64url encoding
// behind a prefix that plain names never get.
func key(name string) string {
	if !strings.HasPrefix(name, encodedPrefix) && validKey(name) {
		return name
	}
	return encodedPrefix + base64.RawURLEncoding.EncodeToString([]byte(name))
}

// nameOf is the inverse of key.
func nameOf(k string) (string, error) {
	enc, ok := strings.CutPrefix(k, encodedPrefix)
	if !ok {
		return k, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	return string(b), err
}

func validKey(name string) bool {
	if name == "" {
		return false
	}
	for tok := range strings.SplitSeq(name, ".") {
		if tok == "" || strings.IndexFunc(tok, func(r rune) bool { return !isTokenRune(r) }) >= 0 {
			return false
		}
	}
	return true
}

func isTokenRune(r rune) bool {
	return r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
}

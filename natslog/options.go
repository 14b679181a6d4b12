package natslog

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults used when no option says otherwise.
const (
	// DefaultStream is the name of the JetStream stream that holds the events.
	DefaultStream = "eventsourced"
	// DefaultPrefix is the first token of every event subject:
	// <prefix>.<type>.<id>.
	DefaultPrefix = "es"
	// DefaultBucket is the name of the KV bucket that holds the snapshots.
	DefaultBucket = "eventsourced_snapshots"
	// DefaultCacheSize is how many entities' last (Seq, stream sequence)
	// pairs a [Log] remembers; see [WithCacheSize].
	DefaultCacheSize = 100_000
	// DefaultMaxInflightBatches is how many multi-event appends a [Log] keeps
	// in flight at once; see [WithMaxInflightBatches].
	DefaultMaxInflightBatches = 32
)

// config is what the options set. One type serves [Setup], [New] and
// [NewSnapshotStore]; each reads the fields it needs.
type config struct {
	stream     string
	prefix     string
	bucket     string
	replicas   int
	storage    jetstream.StorageType
	maxBytes   int64 // stream limit; -1 unlimited
	maxMsgSize int32 // stream limit; -1 unlimited
	kvMaxBytes int64 // bucket limit; -1 unlimited
	cacheSize  int
	maxBatches int
	timeout    time.Duration // 0: the JetStream context's default
	logger     *slog.Logger
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		stream:     DefaultStream,
		prefix:     DefaultPrefix,
		bucket:     DefaultBucket,
		replicas:   1,
		storage:    jetstream.FileStorage,
		maxBytes:   -1,
		maxMsgSize: -1,
		kvMaxBytes: -1,
		cacheSize:  DefaultCacheSize,
		maxBatches: DefaultMaxInflightBatches,
		logger:     slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: nil option", ErrInvalidOption)
		}
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Option configures [Setup], [New] and [NewSnapshotStore]. Pass the same
// options to all three so they agree on names. An option that does not apply
// to a function is ignored by it.
type Option func(*config) error

// WithStream sets the name of the JetStream stream that holds the events
// (default [DefaultStream]). Stream names cannot contain whitespace, '.',
// '*', '>', '/' or '\'.
func WithStream(name string) Option {
	return func(c *config) error {
		if err := validStreamName(name); err != nil {
			return fmt.Errorf("%w: WithStream(%q): %v", ErrInvalidOption, name, err)
		}
		c.stream = name
		return nil
	}
}

// WithPrefix sets the subject prefix of the events (default
// [DefaultPrefix]): events of entity (type, id) are published on
// <prefix>.<type>.<id>. The prefix is one or more subject tokens separated by
// dots, without wildcards or whitespace, and must not start with '$'.
func WithPrefix(prefix string) Option {
	return func(c *config) error {
		if err := validPrefix(prefix); err != nil {
			return fmt.Errorf("%w: WithPrefix(%q): %v", ErrInvalidOption, prefix, err)
		}
		c.prefix = prefix
		return nil
	}
}

// WithBucket sets the name of the KV bucket that holds the snapshots
// (default [DefaultBucket]). Bucket names use letters, digits, '-' and '_'.
func WithBucket(name string) Option {
	return func(c *config) error {
		if !validBucketName(name) {
			return fmt.Errorf("%w: WithBucket(%q): a bucket name is letters, digits, '-' and '_'", ErrInvalidOption, name)
		}
		c.bucket = name
		return nil
	}
}

// WithReplicas sets how many servers of a cluster keep the stream and the
// bucket, 1 to 5 (default 1). Setup applies it.
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("%w: WithReplicas(%d): replicas are 1 to 5", ErrInvalidOption, n)
		}
		c.replicas = n
		return nil
	}
}

// WithStorage sets the storage of the stream and the bucket: file (the
// default) or memory. Setup applies it.
func WithStorage(s jetstream.StorageType) Option {
	return func(c *config) error {
		if s != jetstream.FileStorage && s != jetstream.MemoryStorage {
			return fmt.Errorf("%w: WithStorage(%v): want jetstream.FileStorage or jetstream.MemoryStorage", ErrInvalidOption, s)
		}
		c.storage = s
		return nil
	}
}

// WithMaxBytes limits the size of the event stream in bytes; 0 or less means
// no limit (the default). The stream refuses new events when full rather than
// dropping old ones: an event log never loses an acknowledged event. Setup
// applies it.
func WithMaxBytes(n int64) Option {
	return func(c *config) error {
		c.maxBytes = n
		if n <= 0 {
			c.maxBytes = -1
		}
		return nil
	}
}

// WithMaxEventSize limits the size of one stored event (payload plus
// headers) in bytes; 0 or less means the server's max payload only (the
// default). Setup applies it.
func WithMaxEventSize(n int32) Option {
	return func(c *config) error {
		c.maxMsgSize = n
		if n <= 0 {
			c.maxMsgSize = -1
		}
		return nil
	}
}

// WithBucketMaxBytes limits the size of the snapshot bucket in bytes; 0 or
// less means no limit (the default). Setup applies it.
func WithBucketMaxBytes(n int64) Option {
	return func(c *config) error {
		c.kvMaxBytes = n
		if n <= 0 {
			c.kvMaxBytes = -1
		}
		return nil
	}
}

// WithCacheSize sets how many entities' last (Seq, stream sequence) pairs a
// [Log] remembers (default [DefaultCacheSize]; each takes about 100 bytes
// plus the subject). An append to a remembered entity is one round trip; one
// that is not remembered first looks up the entity's last message. 0 turns
// the cache off.
func WithCacheSize(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: WithCacheSize(%d): negative", ErrInvalidOption, n)
		}
		c.cacheSize = n
		return nil
	}
}

// WithMaxInflightBatches limits how many multi-event (atomic batch) appends
// a [Log] has in flight at once (default [DefaultMaxInflightBatches]). The
// server allows 50 per stream by default, shared by every client; appends
// over the limit wait their turn.
func WithMaxInflightBatches(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxInflightBatches(%d): want at least 1", ErrInvalidOption, n)
		}
		c.maxBatches = n
		return nil
	}
}

// WithTimeout bounds every request of a call whose ctx has no deadline. The
// default is the JetStream context's default timeout.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithTimeout(%v): want a positive duration", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// WithLogger sets the logger for retries and recoveries that reach no
// caller. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}

// validStreamName checks a JetStream stream name as the server does.
func validStreamName(name string) error {
	if name == "" {
		return fmt.Errorf("empty")
	}
	if len(name) > 255 {
		return fmt.Errorf("longer than 255 bytes")
	}
	if i := strings.IndexAny(name, " \t\r\n\f.*>/\\"); i >= 0 {
		return fmt.Errorf("contains %q", name[i])
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("contains a control character")
		}
	}
	return nil
}

// validPrefix checks a subject prefix: dot-separated non-empty tokens of
// printable characters other than wildcards, not starting with '$'.
func validPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("empty")
	}
	if len(prefix) > maxPrefix {
		return fmt.Errorf("%d bytes, over the limit of %d", len(prefix), maxPrefix)
	}
	if prefix[0] == '$' {
		return fmt.Errorf("subjects starting with '$' are reserved")
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" {
			return fmt.Errorf("empty token")
		}
		if tok == "*" || tok == ">" || strings.ContainsAny(tok, "*>") {
			return fmt.Errorf("contains a wildcard")
		}
		for _, r := range tok {
			if r <= ' ' || r == 0x7f {
				return fmt.Errorf("contains whitespace or a control character")
			}
		}
	}
	return nil
}

// validBucketName checks a KV bucket name as nats.go does.
func validBucketName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !literal(name[i]) {
			return false
		}
	}
	return true
}

package natslog

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
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
	// DefaultKeyBucket is the name of the KV bucket that holds the data
	// keys of a [KeyStore].
	DefaultKeyBucket = "eventsourced_keys"
	// DefaultCacheSize is how many entities' last (Seq, stream sequence)
	// pairs a [Log] remembers; see [WithCacheSize].
	DefaultCacheSize = 100_000
	// DefaultMaxInflightBatches is how many multi-event appends a [Log] keeps
	// in flight at once; see [WithMaxInflightBatches].
	DefaultMaxInflightBatches = 32
)

// config is what the options set. One type serves [Setup], [New],
// [NewSnapshotStore] and [NewKeyStore]; each reads the fields it needs and
// refuses the options that do not apply to it.
type config struct {
	stream     string
	prefix     string
	bucket     string
	keyBucket  string
	replicas   int
	storage    jetstream.StorageType
	maxBytes   int64 // stream limit; -1 unlimited
	maxMsgSize int32 // stream limit; -1 unlimited
	kvMaxBytes int64 // bucket limit; -1 unlimited
	cacheSize  int
	maxBatches int
	timeout    time.Duration // 0: the JetStream context's default
	logger     *slog.Logger
	tp         trace.TracerProvider // nil: the global one
	mp         metric.MeterProvider // nil: the global one
}

// use is a set of the calls that take options.
type use uint8

const (
	forSetup use = 1 << iota // Setup and StreamConfig
	forLog                   // New
	forStore                 // NewSnapshotStore
	forKeys                  // NewKeyStore
)

// String names the calls of u, for error messages.
func (u use) String() string {
	var names []string
	for _, c := range []struct {
		u    use
		name string
	}{{forSetup, "Setup"}, {forLog, "New"}, {forStore, "NewSnapshotStore"}, {forKeys, "NewKeyStore"}} {
		if u&c.u != 0 {
			names = append(names, c.name)
		}
	}
	if len(names) > 2 {
		return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
	return strings.Join(names, " and ")
}

func newConfig(call use, opts []Option) (*config, error) {
	c := &config{
		stream:     DefaultStream,
		prefix:     DefaultPrefix,
		bucket:     DefaultBucket,
		keyBucket:  DefaultKeyBucket,
		replicas:   1,
		storage:    jetstream.FileStorage,
		maxBytes:   -1,
		maxMsgSize: -1,
		kvMaxBytes: -1,
		cacheSize:  DefaultCacheSize,
		maxBatches: DefaultMaxInflightBatches,
		logger:     slog.Default(),
	}
	for _, opt := range opts {
		if opt.set == nil {
			return nil, fmt.Errorf("%w: a zero Option", ErrInvalidOption)
		}
		if opt.err != nil {
			return nil, opt.err
		}
		if opt.uses&call == 0 {
			return nil, fmt.Errorf("%w: %s is an option of %s, not of %s", ErrInvalidOption, opt.name, opt.uses, call)
		}
		opt.set(c)
	}
	return c, nil
}

// Option configures [Setup], [New], [NewSnapshotStore] or [NewKeyStore]. Each option's
// documentation says which of them it applies to; the others refuse it with
// an error matching [ErrInvalidOption] that names it, rather than ignore it.
// Give Setup the names (stream, prefix, bucket) that New and
// NewSnapshotStore are given.
type Option struct {
	name string // how the caller wrote it, for error messages
	uses use
	set  func(*config)
	err  error // a bad value, reported by the call that gets the option
}

// option returns an Option named name for the calls of uses, or one that
// fails with err.
func option(name string, uses use, err error, set func(*config)) Option {
	return Option{name: name, uses: uses, set: set, err: err}
}

// WithStream sets the name of the JetStream stream that holds the events
// (default [DefaultStream]). For Setup and New. Stream names cannot contain whitespace, '.',
// '*', '>', '/' or '\'.
func WithStream(name string) Option {
	var err error
	if e := validStreamName(name); e != nil {
		err = fmt.Errorf("%w: WithStream(%q): %v", ErrInvalidOption, name, e)
	}
	return option(fmt.Sprintf("WithStream(%q)", name), forSetup|forLog, err, func(c *config) { c.stream = name })
}

// WithPrefix sets the subject prefix of the events (default
// [DefaultPrefix]): events of entity (type, id) are published on
// <prefix>.<type>.<id>. The prefix is one or more subject tokens separated by
// dots, without wildcards or whitespace, at most 128 bytes, and must not
// start with '$'. For Setup and New.
func WithPrefix(prefix string) Option {
	var err error
	if e := validPrefix(prefix); e != nil {
		err = fmt.Errorf("%w: WithPrefix(%q): %v", ErrInvalidOption, prefix, e)
	}
	return option(fmt.Sprintf("WithPrefix(%q)", prefix), forSetup|forLog, err, func(c *config) { c.prefix = prefix })
}

// WithBucket sets the name of the KV bucket that holds the snapshots
// (default [DefaultBucket]). Bucket names use letters, digits, '-' and '_'.
// For Setup and NewSnapshotStore.
func WithBucket(name string) Option {
	var err error
	if !validBucketName(name) {
		err = fmt.Errorf("%w: WithBucket(%q): a bucket name is letters, digits, '-' and '_'", ErrInvalidOption, name)
	}
	return option(fmt.Sprintf("WithBucket(%q)", name), forSetup|forStore, err, func(c *config) { c.bucket = name })
}

// WithKeyBucket sets the name of the KV bucket that holds the data keys of
// a [KeyStore] (default [DefaultKeyBucket]). Bucket names use letters,
// digits, '-' and '_'. For NewKeyStore.
func WithKeyBucket(name string) Option {
	var err error
	if !validBucketName(name) {
		err = fmt.Errorf("%w: WithKeyBucket(%q): a bucket name is letters, digits, '-' and '_'", ErrInvalidOption, name)
	}
	return option(fmt.Sprintf("WithKeyBucket(%q)", name), forKeys, err, func(c *config) { c.keyBucket = name })
}

// WithReplicas sets how many servers of a cluster keep the stream and the
// bucket, or a [KeyStore]'s bucket, 1 to 5 (default 1). For Setup and
// NewKeyStore (whose [KeyStore.Setup] creates its bucket).
func WithReplicas(n int) Option {
	var err error
	if n < 1 || n > 5 {
		err = fmt.Errorf("%w: WithReplicas(%d): replicas are 1 to 5", ErrInvalidOption, n)
	}
	return option(fmt.Sprintf("WithReplicas(%d)", n), forSetup|forKeys, err, func(c *config) { c.replicas = n })
}

// WithStorage sets the storage of the stream and the bucket, or of a
// [KeyStore]'s bucket: file (the default) or memory. For Setup and
// NewKeyStore.
func WithStorage(s jetstream.StorageType) Option {
	var err error
	if s != jetstream.FileStorage && s != jetstream.MemoryStorage {
		err = fmt.Errorf("%w: WithStorage(%v): want jetstream.FileStorage or jetstream.MemoryStorage", ErrInvalidOption, s)
	}
	return option(fmt.Sprintf("WithStorage(%v)", s), forSetup|forKeys, err, func(c *config) { c.storage = s })
}

// WithMaxBytes limits the size of the event stream in bytes; 0 or less means
// no limit (the default). The stream refuses new events when full rather than
// dropping old ones: an event log never loses an acknowledged event. For
// Setup.
func WithMaxBytes(n int64) Option {
	return option(fmt.Sprintf("WithMaxBytes(%d)", n), forSetup, nil, func(c *config) { c.maxBytes = unlimitedIfNotPositive(n) })
}

// WithMaxEventSize limits the size of one stored event (payload plus
// headers) in bytes; 0 or less means the server's max payload only (the
// default). For Setup.
func WithMaxEventSize(n int32) Option {
	return option(fmt.Sprintf("WithMaxEventSize(%d)", n), forSetup, nil, func(c *config) { c.maxMsgSize = unlimitedIfNotPositive(n) })
}

// WithBucketMaxBytes limits the size of the snapshot bucket in bytes; 0 or
// less means no limit (the default). For Setup.
func WithBucketMaxBytes(n int64) Option {
	return option(fmt.Sprintf("WithBucketMaxBytes(%d)", n), forSetup, nil, func(c *config) { c.kvMaxBytes = unlimitedIfNotPositive(n) })
}

// unlimitedIfNotPositive maps a limit of 0 or less to -1, JetStream's
// "unlimited".
func unlimitedIfNotPositive[T int32 | int64](n T) T {
	if n <= 0 {
		return -1
	}
	return n
}

// WithCacheSize sets how many entities' last (Seq, stream sequence) pairs a
// [Log] remembers (default [DefaultCacheSize]; each takes about 100 bytes
// plus the subject). An append to a remembered entity is one round trip; one
// that is not remembered first looks up the entity's last message. 0 turns
// the cache off. For New.
func WithCacheSize(n int) Option {
	var err error
	if n < 0 {
		err = fmt.Errorf("%w: WithCacheSize(%d): negative", ErrInvalidOption, n)
	}
	return option(fmt.Sprintf("WithCacheSize(%d)", n), forLog, err, func(c *config) { c.cacheSize = n })
}

// WithMaxInflightBatches limits how many multi-event (atomic batch) appends
// a [Log] has in flight at once (default [DefaultMaxInflightBatches]). The
// server allows 50 per stream by default, shared by every client; appends
// over the limit wait their turn. For New.
func WithMaxInflightBatches(n int) Option {
	var err error
	if n < 1 {
		err = fmt.Errorf("%w: WithMaxInflightBatches(%d): want at least 1", ErrInvalidOption, n)
	}
	return option(fmt.Sprintf("WithMaxInflightBatches(%d)", n), forLog, err, func(c *config) { c.maxBatches = n })
}

// WithTimeout bounds every request of a call whose ctx has no deadline. The
// default is the JetStream context's default timeout. For New,
// NewSnapshotStore and NewKeyStore.
func WithTimeout(d time.Duration) Option {
	var err error
	if d <= 0 {
		err = fmt.Errorf("%w: WithTimeout(%v): want a positive duration", ErrInvalidOption, d)
	}
	return option(fmt.Sprintf("WithTimeout(%v)", d), forLog|forStore|forKeys, err, func(c *config) { c.timeout = d })
}

// WithLogger sets the logger for what reaches no caller: the connection
// dropping (Warn), coming back (Info) or closing (Error), snapshot data
// that could not be purged (Warn), publishes retried (Debug). The default
// is slog.Default(); a healthy Log logs nothing per append. For New,
// NewSnapshotStore and NewKeyStore.
func WithLogger(l *slog.Logger) Option {
	var err error
	if l == nil {
		err = fmt.Errorf("%w: WithLogger(nil)", ErrInvalidOption)
	}
	return option("WithLogger", forLog|forStore|forKeys, err, func(c *config) { c.logger = l })
}

// WithTracerProvider sets the tracer provider of the spans of a Log (one
// per append, one per multi-subject lookup) or a SnapshotStore (one per
// Save and Load); see the package documentation. The default is the global
// provider (otel.GetTracerProvider), which records nothing until the
// program installs an SDK; until then no span is started at all. For New
// and NewSnapshotStore.
func WithTracerProvider(tp trace.TracerProvider) Option {
	var err error
	if tp == nil {
		err = fmt.Errorf("%w: WithTracerProvider(nil)", ErrInvalidOption)
	}
	return option("WithTracerProvider", forLog|forStore, err, func(c *config) { c.tp = tp })
}

// WithMeterProvider sets the meter provider of the metrics of a Log or a
// SnapshotStore; see the package documentation. The default is the global
// provider (otel.GetMeterProvider); until the program installs an SDK
// nothing is measured at all. For New and NewSnapshotStore.
func WithMeterProvider(mp metric.MeterProvider) Option {
	var err error
	if mp == nil {
		err = fmt.Errorf("%w: WithMeterProvider(nil)", ErrInvalidOption)
	}
	return option("WithMeterProvider", forLog|forStore, err, func(c *config) { c.mp = mp })
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

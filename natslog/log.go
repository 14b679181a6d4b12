package natslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Compile-time checks that Log provides the contract and its optional
// capabilities.
var (
	_ eventlog.Log           = (*Log)(nil)
	_ eventlog.Deleter       = (*Log)(nil)
	_ eventlog.StreamDeleter = (*Log)(nil)
	_ eventlog.IDLister      = (*Log)(nil)
	_ eventlog.TypeLister    = (*Log)(nil)
	_ eventlog.AllReader     = (*Log)(nil)
	_ eventlog.Closer        = (*Log)(nil)
	_ eventlog.AsyncAppender = (*Log)(nil)
)

// errClosed is what a closed Log returns.
var errClosed = eventlog.ErrClosed

// Retry bounds for answers that say nothing was written.
const (
	// retryWait is the first pause before retrying a request nothing
	// answered or a batch the server could not take; it doubles up to
	// maxRetryWait.
	retryWait    = 50 * time.Millisecond
	maxRetryWait = time.Second
	// maxAttempts bounds those retries; ctx may end them sooner.
	maxAttempts = 20
	// maxStaleRetries bounds appends retried because the remembered stream
	// sequence was stale while the Seq matched.
	maxStaleRetries = 3
)

// The period of the sweeper that fails AppendAsync's appends whose ctx
// ended: a twentieth of the timeout, within these bounds.
const (
	minSweep = 5 * time.Millisecond
	maxSweep = 50 * time.Millisecond
)

// defaultTimeout applies when neither the ctx, [WithTimeout] nor the
// JetStream context give one.
const defaultTimeout = 5 * time.Second

// Log is an [eventlog.Log] on a JetStream stream. It also implements
// [eventlog.Deleter], [eventlog.StreamDeleter], [eventlog.IDLister],
// [eventlog.AllReader], [eventlog.AsyncAppender] and [eventlog.Closer].
//
// The events of entity (type, id) are messages on the subject
// <prefix>.<type>.<id>, type and id escaped as subject tokens (see the
// package documentation). A record's Position is its stream sequence.
//
// Create it with [New] on a stream that [Setup] made.
type Log struct {
	cfg      *config
	js       jetstream.JetStream
	nc       *nats.Conn
	stream   jetstream.Stream
	subjects subjects
	// directLast is the direct-get subject prefix for the last message of a
	// subject; directBatch is the direct-get subject for other requests;
	// msgGet is the subject of the message get API, which only the
	// stream's leader answers (see leaderLast); streamInfo that of the
	// stream info API (see streamLastSeq).
	directLast  string
	directBatch string
	msgGet      string
	streamInfo  string
	timeout     time.Duration
	inbox       *inbox
	watch       *connWatch
	cache       *tailCache
	batches     chan struct{} // a token per multi-event append in flight
	logger      *slog.Logger
	tel         logTelemetry

	closed atomic.Bool
	// closeCtx is canceled by Close, ending subscriptions.
	closeCtx    context.Context
	closeCancel context.CancelFunc

	// lasts carries ReadEntity's lookups to the readers (lastbatch.go);
	// lastQueries counts the requests that served them.
	lasts       chan *lastReq
	lastQueries atomic.Uint64
	// wg counts the readers; readersDone is closed once Close has waited
	// for them.
	wg          sync.WaitGroup
	readersDone chan struct{}

	// behind counts AppendAsync's goroutines (appendBehind); behindMu
	// orders adding to it with Close, which waits for it once closed is
	// set.
	behindMu sync.Mutex
	behind   sync.WaitGroup
}

// New returns a Log on the stream the options name (default
// [DefaultStream]), which must exist: [Setup] creates it. The JetStream
// context js brings the connection, its TLS, credentials and server URLs,
// and its API prefix or domain. New checks that JetStream answers and that
// the stream takes the prefix's subjects and allows direct gets and atomic
// batches. New starts the Log's readers (see the package documentation on
// reads) and a goroutine that follows the connection's status (see
// "Waiting and connection loss"); Close stops them. Close the Log when done;
// it does not close the connection.
func New(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Log, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: nil JetStream context", ErrInvalidOption)
	}
	cfg, err := newConfig(forLog, opts)
	if err != nil {
		return nil, err
	}
	timeout := cfg.timeout
	if timeout == 0 {
		timeout = js.Options().DefaultTimeout
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	sctx, cancel := withDefaultTimeout(ctx, timeout)
	defer cancel()
	stream, err := js.Stream(sctx, cfg.stream)
	if err != nil {
		return nil, streamError(cfg, err)
	}
	if err := checkStream(cfg, stream.CachedInfo()); err != nil {
		return nil, err
	}
	tel, lost, telErr := newLogTelemetry(cfg)
	if telErr != nil {
		cfg.logger.Warn("natslog: some metrics are not reported", slog.Any("error", telErr))
	}
	nc := js.Conn()
	watch := watchConn(nc, "natslog.Log", cfg.logger, lost)
	in, err := newInbox(nc, watch, min(max(timeout/20, minSweep), maxSweep))
	if err != nil {
		watch.close()
		return nil, err
	}
	api := apiPrefix(js)
	l := &Log{
		cfg:         cfg,
		js:          js,
		nc:          nc,
		stream:      stream,
		subjects:    subjects{prefix: cfg.prefix + "."},
		directLast:  api + "DIRECT.GET." + cfg.stream + ".",
		directBatch: api + "DIRECT.GET." + cfg.stream,
		msgGet:      api + "STREAM.MSG.GET." + cfg.stream,
		streamInfo:  api + "STREAM.INFO." + cfg.stream,
		timeout:     timeout,
		inbox:       in,
		watch:       watch,
		cache:       newTailCache(cfg.cacheSize),
		batches:     make(chan struct{}, cfg.maxBatches),
		logger:      cfg.logger,
		tel:         tel,
	}
	l.closeCtx, l.closeCancel = context.WithCancel(context.Background())
	l.lasts = make(chan *lastReq, 4*lastBatchMax)
	l.readersDone = make(chan struct{})
	l.wg.Add(lastReaders)
	for range lastReaders {
		go l.lastReader()
	}
	return l, nil
}

// apiPrefix returns the JetStream API subject prefix of js, with the
// trailing dot.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return jetstream.DefaultAPIPrefix
}

// streamError translates the error of looking up the stream.
func streamError(cfg *config, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) || apiCode(err) == codeStreamNotFound:
		return fmt.Errorf("%w: stream %q does not exist; natslog.Setup creates it", ErrNotSetUp, cfg.stream)
	case isNoJetStream(err):
		return fmt.Errorf("%w: looking up stream %q: %w", ErrNoJetStream, cfg.stream, err)
	}
	return fmt.Errorf("natslog: look up stream %q: %w", cfg.stream, err)
}

// checkStream reports what the stream lacks.
func checkStream(cfg *config, info *jetstream.StreamInfo) error {
	if info == nil {
		return fmt.Errorf("natslog: stream %q: no stream info", cfg.stream)
	}
	c := info.Config
	want := cfg.prefix + ".>"
	covered := false
	for _, s := range c.Subjects {
		if s == want || s == ">" {
			covered = true
		}
	}
	switch {
	case !covered:
		return fmt.Errorf("%w: stream %q does not take subjects %q (it has %q); natslog.Setup with the same options fixes it", ErrNotSetUp, cfg.stream, want, c.Subjects)
	case !c.AllowDirect:
		return fmt.Errorf("%w: stream %q does not allow direct gets; natslog.Setup fixes it", ErrNotSetUp, cfg.stream)
	case !c.AllowAtomicPublish:
		return fmt.Errorf("%w: stream %q does not allow atomic batch publish (nats-server 2.12 or later); natslog.Setup fixes it", ErrNotSetUp, cfg.stream)
	}
	return nil
}

// withDefaultTimeout bounds ctx by d unless it has a deadline already.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// reqCtx bounds one request: by ctx's deadline or the Log's timeout.
func (l *Log) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return withDefaultTimeout(ctx, l.timeout)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Close implements [eventlog.Closer]. It ends every subscription with
// [eventlog.ErrClosed] and unsubscribes from replies; calls still waiting
// for one get [eventlog.ErrClosed], and so do the appends of
// [Log.AppendAsync] in flight, whose done Close calls (or waits for). It
// does not close the connection.
// Afterwards every method returns [eventlog.ErrClosed], Close included.
func (l *Log) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return errClosed
	}
	l.closeCancel()
	l.inbox.shutdown()
	// appendBehind adds to behind under behindMu only while closed is not
	// set: past this, nothing adds to it.
	l.behindMu.Lock()
	l.behindMu.Unlock() //nolint:staticcheck // the lock orders, nothing to guard

	l.behind.Wait()
	l.wg.Wait()
	close(l.readersDone)
	l.watch.close()
	return nil
}

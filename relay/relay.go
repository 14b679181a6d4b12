package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// Message is one integration event as a [Sink] publishes it.
type Message struct {
	// Subject is where the message goes: a NATS subject, a Kafka topic.
	Subject string
	// Key partitions the message (Kafka's record key); the default map
	// sets the entity id, so one entity's messages stay in order on one
	// partition.
	Key string
	// ID identifies the message for the bus's deduplication (the
	// Nats-Msg-Id header, a Kafka header). The relay sets [DefaultID] of
	// the record when the map leaves it empty. It must be the same every
	// time the same event is published, and differ between events.
	ID string
	// Data is the payload. A sink must not modify it or keep it after
	// Publish returns: it may be the record's own bytes.
	Data []byte
	// Headers are extra headers, written as they are.
	Headers map[string]string
	// Position is the record's log Position. The relay sets it (a map
	// cannot); sinks that implement [Resumer] store it with the message.
	Position uint64
}

// Sink publishes messages to a bus.
type Sink interface {
	// Publish publishes msgs, in order, and returns nil only once the bus
	// has acknowledged every one of them durably. On an error, any of them
	// may or may not have been published; the relay publishes the whole
	// batch again, with the same IDs, so that the bus can drop the
	// duplicates. Publish is never called concurrently with itself by one
	// relay, and must return by ctx's end.
	Publish(ctx context.Context, msgs []Message) error
}

// Resumer is the optional capability of a [Sink] to say how far it has
// published: the relay asks it on Start and resumes after the larger of
// its stored offset and the sink's answer, so a crash between a publish
// and the offset commit publishes nothing again, however long the relay
// stays down.
type Resumer interface {
	// LastPublished returns the Position of the last message the bus
	// holds from this sink, and whether it knows one. The sink must hold
	// every message before that one too (no gaps), or resuming after it
	// would skip events.
	LastPublished(ctx context.Context) (position uint64, found bool, err error)
}

// Header names of the default map ([DefaultMap]).
const (
	HeaderType     = "Es-Type"
	HeaderID       = "Es-Id"
	HeaderSeq      = "Es-Seq"
	HeaderPosition = "Es-Position"
	HeaderEvent    = "Es-Event"
	HeaderRevision = "Es-Rev"
)

// DefaultID returns the dedupe id of a record: its entity type, entity id
// and Seq as "<type>/<id>/<seq>", type and id escaped as url.PathEscape
// does (so a "/" in them cannot make two events' ids equal). It stays the
// same when the log is copied elsewhere, where the Position may not.
func DefaultID(rec eventlog.Record) string {
	return url.PathEscape(rec.EntityType) + "/" + url.PathEscape(rec.EntityID) + "/" + strconv.FormatUint(rec.Seq, 10)
}

// DefaultMap returns the map the relay uses without [WithMap]: every event
// is published, on subject <prefix>.<entity type>.<event name>, keyed by
// the entity id, with ID [DefaultID], the record's Data as payload and
// headers [HeaderType], [HeaderID] (url.PathEscape of the id),
// [HeaderSeq], [HeaderPosition], [HeaderEvent] and [HeaderRevision], plus
// the metadata's W3C trace context (traceparent, tracestate) when
// present. A type or event name that is not a NATS subject token (empty,
// or with a '.', '*', '>' or white space) is an error: a poison event.
func DefaultMap(prefix string) func(eventlog.Record) (Message, bool, error) {
	return func(rec eventlog.Record) (Message, bool, error) {
		for _, tok := range [...]string{rec.EntityType, rec.Name} {
			if !subjectToken(tok) {
				return Message{}, false, fmt.Errorf("relay: %s/%s seq %d: %q is not a subject token; map the event with WithMap",
					eventlog.FormatID(rec.EntityType), eventlog.FormatID(rec.EntityID), rec.Seq, tok)
			}
		}
		// The subject, the ID (which holds the escaped id and the Seq)
		// and the other numbers are cut from one string: a message costs
		// one string and its header map.
		typ, id := url.PathEscape(rec.EntityType), url.PathEscape(rec.EntityID)
		var arr [128]byte
		b := append(arr[:0], prefix...)
		b = append(append(append(append(b, '.'), rec.EntityType...), '.'), rec.Name...)
		subjEnd := len(b)
		b = append(append(append(append(b, typ...), '/'), id...), '/')
		seqStart := len(b)
		b = strconv.AppendUint(b, rec.Seq, 10)
		idEnd := len(b)
		b = strconv.AppendUint(b, rec.Position, 10)
		posEnd := len(b)
		b = strconv.AppendUint(b, uint64(rec.Revision), 10)
		s := string(b)
		h := make(map[string]string, 8)
		h[HeaderType] = rec.EntityType
		h[HeaderID] = s[subjEnd+len(typ)+1 : seqStart-1]
		h[HeaderSeq] = s[seqStart:idEnd]
		h[HeaderPosition] = s[idEnd:posEnd]
		h[HeaderEvent] = rec.Name
		h[HeaderRevision] = s[posEnd:]
		for _, k := range [...]string{"traceparent", "tracestate"} {
			if v, ok := rec.Metadata[k]; ok {
				h[k] = v
			}
		}
		return Message{
			Subject: s[:subjEnd],
			Key:     rec.EntityID,
			ID:      s[subjEnd:idEnd],
			Data:    rec.Data,
			Headers: h,
		}, true, nil
	}
}

// subjectToken reports whether s can be one token of a NATS subject.
func subjectToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// Relay publishes the events of a log to a [Sink]. It is a projection
// (package projection) whose handler publishes: its offset, slices,
// status, pause and resume, telemetry and poison policy are a
// projection's. Create it with [New].
type Relay struct {
	p    *projection.Projection
	name string
	sink Sink
	cfg  config

	// startMu serializes Start, so that its resume and status reset
	// never run beside another Start's run.
	startMu sync.Mutex

	// mu guards st.
	mu sync.Mutex
	st pubStatus
}

// pubStatus is the relay's own part of [Status].
type pubStatus struct {
	published, filtered, errorsTotal uint64
	failures                         int
	lastErr                          error
	lastErrTime                      time.Time
	resumedFrom                      uint64
}

// New returns a relay named name that publishes the events of the given
// entity types of log (every type if types is empty) to sink, from the
// offset that offsets keeps under name. With one type it follows the type
// as projection.New does; otherwise, as projection.NewOfTypes does, in
// log-wide Position order, and log must implement eventlog.AllReader.
//
// Errors name what was wrong and match [ErrInvalid]: a nil log, offset
// store or sink, an empty name, a bad option value.
func New(log eventlog.Log, types []string, name string, offsets projection.OffsetStore, sink Sink, opts ...Option) (*Relay, error) {
	switch {
	case log == nil:
		return nil, fmt.Errorf("%w: nil log", ErrInvalid)
	case name == "":
		return nil, fmt.Errorf("%w: empty relay name", ErrInvalid)
	case offsets == nil:
		return nil, fmt.Errorf("%w: relay %s: nil offset store", ErrInvalid, name)
	case sink == nil:
		return nil, fmt.Errorf("%w: relay %s: nil sink", ErrInvalid, name)
	}
	cfg := config{
		prefix:   DefaultPrefix,
		batch:    DefaultBatchSize,
		initial:  100 * time.Millisecond,
		maxDelay: 10 * time.Second,
		logger:   slog.Default(),
	}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: relay %s: option %d is nil", ErrInvalid, name, i+1)
		}
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("relay %s: %w", name, err)
		}
	}
	if cfg.mapf == nil {
		cfg.mapf = DefaultMap(cfg.prefix)
	}
	r := &Relay{name: name, sink: sink, cfg: cfg}
	popts := append([]projection.Option{
		projection.WithBatchSize(cfg.batch),
		projection.WithBufferSize(2 * cfg.batch),
		projection.WithLogger(cfg.logger),
	}, cfg.popts...)
	var err error
	if len(types) == 1 {
		r.p, err = projection.New(log, types[0], name, offsets, r.handle, popts...)
	} else {
		r.p, err = projection.NewOfTypes(log, types, name, offsets, r.handle, popts...)
	}
	if errors.Is(err, projection.ErrInvalid) {
		return nil, fmt.Errorf("%w: relay %s: %w", ErrInvalid, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", name, err)
	}
	r.cfg.offsets = offsets
	return r, nil
}

// Name returns the relay's name, with its slice if it has one
// ([WithProjectionOptions] and projection.WithSlice).
func (r *Relay) Name() string { return r.p.Name() }

// Projection returns the projection the relay runs on, for what a
// projection offers and the relay does not repeat: WaitFor (until an event
// is published), SetOffset, Reset, and the dead letters of
// projection.SkipPoison.
func (r *Relay) Projection() *projection.Projection { return r.p }

// Start starts the relay in goroutines it owns, as projection's Start
// does. If the sink is a [Resumer] and says it holds events beyond the
// stored offset (a crash came between a publish and its offset commit),
// the offset is moved there first, so they are not published again. The
// relay runs until ctx ends, [Relay.Stop] is called, or a poison event
// (an error of the map) stops it.
func (r *Relay) Start(ctx context.Context) error {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	if r.p.Status().Running {
		return r.p.Start(ctx) // projection.ErrRunning
	}
	if err := r.resume(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	r.st = pubStatus{resumedFrom: r.st.resumedFrom}
	r.mu.Unlock()
	return r.p.Start(ctx)
}

// resume moves the stored offset to the sink's last published Position
// when that is ahead.
func (r *Relay) resume(ctx context.Context) error {
	res, ok := r.sink.(Resumer)
	// A slice's name is not the relay's: the sink's last message may be
	// another slice's, so a slice relies on its own offset.
	if !ok || r.cfg.noResume || r.p.Name() != r.name {
		return nil
	}
	pos, found, err := res.LastPublished(ctx)
	if err != nil {
		return fmt.Errorf("relay: %s: last published position: %w", r.p.Name(), err)
	}
	if !found {
		return nil
	}
	off, err := r.cfg.offsets.Load(ctx, r.p.Name())
	if err != nil {
		return fmt.Errorf("relay: %s: load offset: %w", r.p.Name(), err)
	}
	if pos <= off {
		return nil
	}
	if err := r.p.SetOffset(ctx, pos); err != nil {
		return fmt.Errorf("relay: %s: resume after position %d: %w", r.p.Name(), pos, err)
	}
	r.cfg.logger.Info("relay resumed after the sink's last message", "relay", r.p.Name(), "offset", off, "position", pos)
	r.mu.Lock()
	r.st.resumedFrom = pos
	r.mu.Unlock()
	return nil
}

// Stop stops the relay and waits for its goroutines, as projection's Stop
// does. A batch being published sees its context canceled; its offset is
// not committed, so the next Start publishes it again (with the same IDs).
func (r *Relay) Stop(ctx context.Context) error { return r.p.Stop(ctx) }

// Wait waits for the current or last run to end and returns why, as
// projection's Wait does: nil after Stop or the end of the context, a
// *projection.PoisonError when the map failed on an event.
func (r *Relay) Wait(ctx context.Context) error { return r.p.Wait(ctx) }

// Run starts the relay and waits for it to end.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.Start(ctx); err != nil {
		return err
	}
	return r.p.Wait(context.Background())
}

// Status is a relay's progress: its projection's, with the sink's
// failures added.
type Status struct {
	projection.Status
	// Published counts the messages the sink acknowledged since Start
	// (a batch published again after a failed offset commit counts
	// again); Filtered the events the map left out (its false).
	Published uint64
	Filtered  uint64
	// PublishFailures counts the failed publishes of the batch in hand,
	// since the last successful one: while the bus is unreachable it
	// grows, and Lag shows what waits. They are added to Retries too, and
	// LastError is the latest of the projection's and the sink's errors.
	PublishFailures int
	// PublishErrors counts every failed publish since Start.
	PublishErrors uint64
	// LastPublishError is the sink's last error and when it happened.
	LastPublishError     error
	LastPublishErrorTime time.Time
	// ResumedFrom is the Position the relay last moved its offset to on
	// Start because the sink ([Resumer]) held events beyond it; 0 if it
	// never did.
	ResumedFrom uint64
}

// Status returns the relay's current progress.
func (r *Relay) Status() Status {
	st := Status{Status: r.p.Status()}
	r.mu.Lock()
	defer r.mu.Unlock()
	st.Published, st.Filtered = r.st.published, r.st.filtered
	st.PublishFailures, st.PublishErrors = r.st.failures, r.st.errorsTotal
	st.LastPublishError, st.LastPublishErrorTime = r.st.lastErr, r.st.lastErrTime
	st.ResumedFrom = r.st.resumedFrom
	st.Retries += r.st.failures
	if r.st.lastErr != nil && !r.st.lastErrTime.Before(st.LastErrorTime) {
		st.LastError, st.LastErrorTime = r.st.lastErr, r.st.lastErrTime
	}
	return st
}

// mapError is an error of the map: the event's fault, so the projection's
// poison policy applies to it.
type mapError struct {
	rec eventlog.Record
	err error
}

// Error implements error, naming the event.
func (e *mapError) Error() string {
	return fmt.Sprintf("relay: map %s/%s seq %d (position %d): %v", eventlog.FormatID(e.rec.EntityType),
		eventlog.FormatID(e.rec.EntityID), e.rec.Seq, e.rec.Position, e.err)
}

// Unwrap returns the map's error.
func (e *mapError) Unwrap() error { return e.err }

// handle is the projection's handler: it maps the batch, then publishes
// it until the sink acknowledges it or ctx ends. Only the map fails it.
func (r *Relay) handle(ctx context.Context, batch []eventlog.Record) error {
	msgs := make([]Message, 0, len(batch))
	for _, rec := range batch {
		m, ok, err := r.mapOne(rec)
		if err != nil {
			return &mapError{rec: rec, err: err}
		}
		if ok {
			msgs = append(msgs, m)
		}
	}
	filtered := uint64(len(batch) - len(msgs))
	if len(msgs) > 0 {
		if err := r.publish(ctx, msgs); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.st.published += uint64(len(msgs))
	r.st.filtered += filtered
	r.mu.Unlock()
	return nil
}

// mapOne maps rec, completing what the map leaves to the relay.
func (r *Relay) mapOne(rec eventlog.Record) (m Message, ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("map panicked: %v", v)
		}
	}()
	m, ok, err = r.cfg.mapf(rec)
	if err != nil || !ok {
		return Message{}, false, err
	}
	if m.Subject == "" {
		return Message{}, false, errors.New("the map returned a message without a subject")
	}
	if m.ID == "" {
		m.ID = DefaultID(rec)
	}
	m.Position = rec.Position
	return m, true, nil
}

// publish calls the sink until it succeeds or ctx ends. A sink's failure
// is never the event's: the batch waits, with exponential backoff, and
// nothing is skipped.
func (r *Relay) publish(ctx context.Context, msgs []Message) error {
	delay := r.cfg.initial
	for {
		err := r.callSink(ctx, msgs)
		if err == nil {
			r.mu.Lock()
			r.st.failures = 0
			r.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.mu.Lock()
		r.st.failures++
		r.st.errorsTotal++
		r.st.lastErr, r.st.lastErrTime = err, time.Now()
		failures := r.st.failures
		r.mu.Unlock()
		r.cfg.logger.Warn("relay publish failed; retrying", "relay", r.p.Name(), "messages", len(msgs),
			"first_position", msgs[0].Position, "last_position", msgs[len(msgs)-1].Position,
			"failures", failures, "err", err, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, r.cfg.maxDelay)
	}
}

// callSink calls the sink, turning a panic into an error.
func (r *Relay) callSink(ctx context.Context, msgs []Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("relay: sink panicked: %v", v)
		}
	}()
	return r.sink.Publish(ctx, msgs)
}

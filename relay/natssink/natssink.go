package natssink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/relay"
)

// HeaderPosition is the header in which the sink stores each message's
// log Position ([relay.Message.Position]).
const HeaderPosition = "Relay-Position"

// Defaults of the options.
const (
	DefaultWindow     = 1024
	DefaultAckTimeout = 10 * time.Second
)

// Compile-time checks that Sink is a relay.Sink and a relay.Resumer.
var (
	_ relay.Sink    = (*Sink)(nil)
	_ relay.Resumer = (*Sink)(nil)
)

// Sink publishes a relay's messages to a JetStream stream. Create it with
// [New].
type Sink struct {
	js     jetstream.JetStream
	stream string
	cfg    config

	// mu serializes Publish and LastPublished and guards the fields below
	// it: the exclusive chain's head.
	mu      sync.Mutex
	synced  bool   // lastSeq and lastPos are the stream's
	lastSeq uint64 // the stream's last sequence
	lastPos uint64 // the Position of the stream's last message, 0 if none
}

type config struct {
	window     int
	ackTimeout time.Duration
	exclusive  bool
}

// Option configures a [Sink].
type Option func(*config) error

// WithWindow sets how many publishes may wait for their acks at once
// (default [DefaultWindow]).
func WithWindow(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: natssink.WithWindow(%d): must be >= 1", relay.ErrInvalid, n)
		}
		c.window = n
		return nil
	}
}

// WithAckTimeout sets how long Publish waits for the next ack, or for the
// replies when it reads the stream's head (with [WithExclusive]),
// before it gives up on the batch (default [DefaultAckTimeout]); the relay
// then publishes it again. A request whose reply is lost, as it can be
// while a cluster elects a new leader, would otherwise wait until the
// relay context's deadline (the client applies its own default timeout
// only to a context without one).
func WithAckTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: natssink.WithAckTimeout(%v): must be positive", relay.ErrInvalid, d)
		}
		c.ackTimeout = d
		return nil
	}
}

// WithExclusive declares that the stream holds this sink's messages and
// no others. The sink then chains its publishes with the
// Nats-Expected-Last-Sequence header, so the stream only ever holds a
// gap-free prefix of what it was given, and [Sink.LastPublished] can
// tell the relay where to resume: no message is stored twice, however
// long after a crash the relay restarts, beyond the stream's duplicate
// window. A message from anyone else in the stream stops the sink with
// an error naming it.
func WithExclusive() Option {
	return func(c *config) error {
		c.exclusive = true
		return nil
	}
}

// New returns a sink that publishes to the existing stream (see [Setup])
// through js. Messages go to their Subject, which the stream must
// capture, with the Nats-Msg-Id header set to their ID.
//
// Without [WithExclusive], js's connection must not keep publishes in a
// reconnect buffer (connect with nats.ReconnectBufSize(-1); see Order in
// the package documentation), or New refuses it.
//
// js's asynchronous publishing is used: create it with
// jetstream.WithPublishAsyncMaxPending at least the window, and
// preferably jetstream.WithPublishAsyncTimeout, so that acks lost with a
// connection are forgotten by the client too.
func New(ctx context.Context, js jetstream.JetStream, stream string, opts ...Option) (*Sink, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: natssink: nil JetStream", relay.ErrInvalid)
	}
	if stream == "" {
		return nil, fmt.Errorf("%w: natssink: empty stream name", relay.ErrInvalid)
	}
	cfg := config{window: DefaultWindow, ackTimeout: DefaultAckTimeout}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: natssink: option %d is nil", relay.ErrInvalid, i+1)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if nc := js.Conn(); nc != nil && !cfg.exclusive && nc.Opts.ReconnectBufSize >= 0 {
		return nil, fmt.Errorf("%w: natssink: js's connection keeps publishes in a reconnect buffer (nats.ReconnectBufSize is %d): "+
			"a failed batch's messages could reach the stream after the batch is published again and put an entity's events out of order; "+
			"connect with nats.ReconnectBufSize(-1), or use natssink.WithExclusive", relay.ErrInvalid, nc.Opts.ReconnectBufSize)
	}
	if _, err := js.Stream(ctx, stream); err != nil {
		return nil, fmt.Errorf("natssink: stream %s: %w", stream, err)
	}
	return &Sink{js: js, stream: stream, cfg: cfg}, nil
}

// SetupOption configures [Setup].
type SetupOption func(*jetstream.StreamConfig) error

// WithDuplicateWindow sets how long the stream remembers message IDs to
// drop duplicates (default 2 minutes): a batch the relay publishes again
// within it after a crash is stored once.
func WithDuplicateWindow(d time.Duration) SetupOption {
	return func(c *jetstream.StreamConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: natssink.WithDuplicateWindow(%v): must be positive", relay.ErrInvalid, d)
		}
		c.Duplicates = d
		return nil
	}
}

// WithReplicas sets the stream's replicas (default 1).
func WithReplicas(n int) SetupOption {
	return func(c *jetstream.StreamConfig) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("%w: natssink.WithReplicas(%d): must be 1 to 5", relay.ErrInvalid, n)
		}
		c.Replicas = n
		return nil
	}
}

// WithStorage sets the stream's storage (default file).
func WithStorage(s jetstream.StorageType) SetupOption {
	return func(c *jetstream.StreamConfig) error {
		c.Storage = s
		return nil
	}
}

// Setup creates the stream, or updates it, to capture subjects (such as
// "events.>") with file storage and a duplicate window of 2 minutes
// unless options say otherwise.
func Setup(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, opts ...SetupOption) error {
	switch {
	case js == nil:
		return fmt.Errorf("%w: natssink.Setup: nil JetStream", relay.ErrInvalid)
	case stream == "":
		return fmt.Errorf("%w: natssink.Setup: empty stream name", relay.ErrInvalid)
	case len(subjects) == 0:
		return fmt.Errorf("%w: natssink.Setup %s: no subjects", relay.ErrInvalid, stream)
	}
	cfg := jetstream.StreamConfig{Name: stream, Subjects: subjects, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}
	for i, o := range opts {
		if o == nil {
			return fmt.Errorf("%w: natssink.Setup: option %d is nil", relay.ErrInvalid, i+1)
		}
		if err := o(&cfg); err != nil {
			return err
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("natssink: set up stream %s: %w", stream, err)
	}
	return nil
}

// Publish implements [relay.Sink]. It publishes msgs asynchronously, at
// most the window at once, and returns when the stream has acknowledged
// all of them. An ack that says the message is a duplicate counts as
// success: the stream holds it already.
func (s *Sink) Publish(ctx context.Context, msgs []relay.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.exclusive {
		_, err := s.publish(ctx, msgs, 0, false)
		return err
	}
	if !s.synced {
		if err := s.sync(ctx); err != nil {
			return err
		}
	}
	// The stream holds a prefix of what was given to it: skip it.
	i := 0
	for i < len(msgs) && msgs[i].Position <= s.lastPos {
		i++
	}
	if i == len(msgs) {
		return nil
	}
	last, err := s.publish(ctx, msgs[i:], s.lastSeq, true)
	if err != nil {
		// Some of them may be stored: read the head again.
		s.synced = false
		return err
	}
	s.lastSeq, s.lastPos = last, msgs[len(msgs)-1].Position
	return nil
}

// publish publishes msgs and waits for their acks; chained, each expects
// the stream's last sequence to be its predecessor's. It returns the
// sequence of the last message.
func (s *Sink) publish(ctx context.Context, msgs []relay.Message, seq uint64, chained bool) (uint64, error) {
	pending := make([]jetstream.PubAckFuture, 0, min(len(msgs), s.cfg.window))
	var timer *time.Timer // made when an ack is first waited for
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var last uint64
	// wait waits for the oldest pending ack. An ack that is there already
	// is taken without the timer: most are, when the window is full or
	// the batch is all sent, and the timer's stop and reset cost more
	// than the rest of the wait.
	wait := func() error {
		f := pending[0]
		pending = pending[1:]
		okc, errc := f.Ok(), f.Err()
		select {
		case ack := <-okc:
			last = ack.Sequence
			return nil
		case err := <-errc:
			return s.failed(f, err)
		default:
		}
		if timer == nil {
			timer = time.NewTimer(s.cfg.ackTimeout)
		} else {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(s.cfg.ackTimeout)
		}
		select {
		case ack := <-okc:
			last = ack.Sequence
			return nil
		case err := <-errc:
			return s.failed(f, err)
		case <-timer.C:
			return fmt.Errorf("natssink: no ack from stream %s in %v", s.stream, s.cfg.ackTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := newBatch(msgs, seq, chained)
	for i := range msgs {
		if len(pending) == s.cfg.window {
			if err := wait(); err != nil {
				return 0, err
			}
		}
		nm := b.msg(i)
		for {
			// No retries by the client: it resends a message that met
			// no stream leader on a timer of its own, after messages
			// sent later, which could put them out of order.
			f, err := s.js.PublishMsgAsync(nm, noClientRetries...)
			if err == nil {
				pending = append(pending, f)
				break
			}
			if errors.Is(err, nats.ErrReconnectBufExceeded) {
				return 0, fmt.Errorf("natssink: publish %s (id %s): the connection to NATS is down (%w)", msgs[i].Subject, msgs[i].ID, err)
			}
			// A client-wide full pipeline (other publishers on js)
			// refuses after a stall; nothing was sent.
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
				return 0, fmt.Errorf("natssink: publish %s (id %s): %w", msgs[i].Subject, msgs[i].ID, err)
			}
		}
	}
	for len(pending) > 0 {
		if err := wait(); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// noClientRetries turns off the client's own resending of a message
// that met no stream leader; the relay publishes the batch again.
var noClientRetries = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

// failed returns the error of f's publish, naming the message.
func (s *Sink) failed(f jetstream.PubAckFuture, err error) error {
	m := f.Msg()
	return fmt.Errorf("natssink: publish %s (id %s): %w", m.Subject, m.Header.Get(jetstream.MsgIDHeader), err)
}

// batch builds the NATS messages of one publish. Their structs, their
// headers' value slices and the digits of the numeric headers share one
// allocation each for the whole batch, so that a message costs its
// header map and little else. A batch is never reused: a publish that
// fails leaves acks pending, whose futures keep their messages and may
// still send them again.
type batch struct {
	msgs    []relay.Message
	nms     []nats.Msg
	vals    []string // the headers' values, in one backing array
	digits  string   // the decimal Position (and expected sequence) of every message
	ends    []int    // where each number of digits ends
	chained bool
}

// newBatch prepares the NATS messages of msgs; chained, the first
// expects the stream's last sequence to be seq.
func newBatch(msgs []relay.Message, seq uint64, chained bool) *batch {
	per := 2 // Nats-Msg-Id, the Position
	if chained {
		per = 3 // and Nats-Expected-Last-Sequence
	}
	n := 0
	for i := range msgs {
		n += len(msgs[i].Headers) + per
	}
	b := &batch{msgs: msgs, nms: make([]nats.Msg, len(msgs)), vals: make([]string, 0, n), chained: chained}
	nums := per - 1
	b.ends = make([]int, 0, nums*len(msgs))
	digits := make([]byte, 0, 8*nums*len(msgs))
	for i := range msgs {
		digits = strconv.AppendUint(digits, msgs[i].Position, 10)
		b.ends = append(b.ends, len(digits))
		if chained {
			digits = strconv.AppendUint(digits, seq+uint64(i), 10)
			b.ends = append(b.ends, len(digits))
		}
	}
	b.digits = string(digits)
	return b
}

// num returns the k-th number of the batch's digits.
func (b *batch) num(k int) string {
	start := 0
	if k > 0 {
		start = b.ends[k-1]
	}
	return b.digits[start:b.ends[k]]
}

// msg returns the NATS message of the i-th message.
func (b *batch) msg(i int) *nats.Msg {
	m := &b.msgs[i]
	// A map of at most 8 entries is one group, without a table: the
	// default map's 6 headers and the sink's 2 fit.
	n := len(m.Headers) + 2
	if b.chained {
		n++
	}
	h := make(nats.Header, n)
	add := func(k, v string) {
		b.vals = append(b.vals, v)
		h[k] = b.vals[len(b.vals)-1 : len(b.vals) : len(b.vals)]
	}
	for k, v := range m.Headers {
		add(k, v)
	}
	add(jetstream.MsgIDHeader, m.ID)
	if b.chained {
		add(HeaderPosition, b.num(2*i))
		add(jetstream.ExpectedLastSeqHeader, b.num(2*i+1))
	} else {
		add(HeaderPosition, b.num(i))
	}
	nm := &b.nms[i]
	*nm = nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}
	return nm
}

// sync reads the stream's head: its last sequence and the Position of its
// last message, within the ack timeout: see WithAckTimeout.
func (s *Sink) sync(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.ackTimeout)
	defer cancel()
	err := s.readHead(sctx)
	if err != nil && ctx.Err() == nil && sctx.Err() != nil {
		return fmt.Errorf("%w (no reply in %v: WithAckTimeout)", err, s.cfg.ackTimeout)
	}
	return err
}

// readHead is sync without its timeout.
func (s *Sink) readHead(ctx context.Context) error {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return fmt.Errorf("natssink: stream %s: %w", s.stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("natssink: stream %s: info: %w", s.stream, err)
	}
	s.lastSeq, s.lastPos = info.State.LastSeq, 0
	if info.State.LastSeq > 0 && info.State.Msgs > 0 {
		m, err := st.GetMsg(ctx, info.State.LastSeq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Deleted: nothing to skip; the relay's offset decides.
		case err != nil:
			return fmt.Errorf("natssink: stream %s: read message %d: %w", s.stream, info.State.LastSeq, err)
		default:
			v := m.Header.Get(HeaderPosition)
			pos, perr := strconv.ParseUint(v, 10, 64)
			if perr != nil {
				return fmt.Errorf("natssink: stream %s: message %d on %s has no %s header (%q): the stream is not this sink's alone, as WithExclusive needs",
					s.stream, info.State.LastSeq, m.Subject, HeaderPosition, v)
			}
			s.lastPos = pos
		}
	}
	s.synced = true
	return nil
}

// LastPublished implements [relay.Resumer]. With [WithExclusive] it
// returns the Position of the stream's last message; without, it knows
// none (found false), since other publishers may share the stream and a
// failed batch may have left a gap before its last stored message.
func (s *Sink) LastPublished(ctx context.Context) (uint64, bool, error) {
	if !s.cfg.exclusive {
		return 0, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sync(ctx); err != nil {
		return 0, false, err
	}
	return s.lastPos, s.lastPos > 0, nil
}

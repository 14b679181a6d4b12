package kafkasink

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventsourced-go/eventsourced/relay"
)

// Header names the sink adds to every record.
const (
	// HeaderID carries [relay.Message.ID], for consumers to drop the
	// duplicates a crash can cause (see the package documentation).
	HeaderID = "Relay-Msg-Id"
	// HeaderPosition carries [relay.Message.Position].
	HeaderPosition = "Relay-Position"
)

// DefaultTimeout bounds one Publish unless [WithTimeout] says otherwise.
const DefaultTimeout = 30 * time.Second

// Compile-time check that Sink is a relay.Sink.
var _ relay.Sink = (*Sink)(nil)

// Sink produces a relay's messages to Kafka through a franz-go client.
// Create it with [New].
type Sink struct {
	cl      *kgo.Client
	timeout time.Duration
}

// Option configures a [Sink].
type Option func(*Sink) error

// WithTimeout bounds how long one Publish waits for the brokers (default
// [DefaultTimeout]); past it, the records not yet acknowledged fail and
// the relay produces the batch again.
func WithTimeout(d time.Duration) Option {
	return func(s *Sink) error {
		if d <= 0 {
			return fmt.Errorf("%w: kafkasink.WithTimeout(%v): must be positive", relay.ErrInvalid, d)
		}
		s.timeout = d
		return nil
	}
}

// New returns a sink that produces through cl, which the caller built
// with its brokers, TLS and SASL, and closes. Keep cl's defaults for
// what the relay relies on: the idempotent producer (do not set
// kgo.DisableIdempotentWrite) and acks from all in-sync replicas, so that
// the retries of the client never reorder or duplicate a partition's
// records. Messages go to the topic named by their Subject (which must
// exist unless the brokers create topics), keyed by their Key, so the
// default partitioner keeps one entity's records on one partition in
// order.
func New(cl *kgo.Client, opts ...Option) (*Sink, error) {
	if cl == nil {
		return nil, fmt.Errorf("%w: kafkasink: nil client", relay.ErrInvalid)
	}
	s := &Sink{cl: cl, timeout: DefaultTimeout}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: kafkasink: option %d is nil", relay.ErrInvalid, i+1)
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Publish implements [relay.Sink]: it produces msgs and waits until the
// brokers have acknowledged every record, or the first failure.
func (s *Sink) Publish(ctx context.Context, msgs []relay.Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	recs := make([]*kgo.Record, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		h := make([]kgo.RecordHeader, 0, len(m.Headers)+2)
		for k, v := range m.Headers {
			h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		h = append(h, kgo.RecordHeader{Key: HeaderID, Value: []byte(m.ID)},
			kgo.RecordHeader{Key: HeaderPosition, Value: strconv.AppendUint(nil, m.Position, 10)})
		recs[i] = &kgo.Record{Topic: m.Subject, Value: m.Data, Headers: h}
		if m.Key != "" {
			recs[i].Key = []byte(m.Key)
		}
	}
	// Produce, not ProduceSync: a record already handed to a broker
	// connection is not failed by ctx, and Publish must return by ctx's
	// end (the relay's Stop).
	var (
		mu       sync.Mutex
		firstErr error
		left     = len(recs)
		done     = make(chan struct{})
	)
	for _, r := range recs {
		s.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("kafkasink: produce to %s (id %s): %w", r.Topic, headerValue(r, HeaderID), err)
			}
			if left--; left == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("kafkasink: %d of %d records not acknowledged: %w", left0(&mu, &left), len(recs), ctx.Err())
	}
	return firstErr
}

func left0(mu *sync.Mutex, left *int) int {
	mu.Lock()
	defer mu.Unlock()
	return *left
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

package entity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// IdempotencyKeyMetadata is the metadata key under which the last event a
// command persists records the command's idempotency key (see
// [WithIdempotencyKey]).
const IdempotencyKeyMetadata = "idempotency_key"

// IdempotencyReplyMetadata is the metadata key under which the event that
// records an idempotency key (see [IdempotencyKeyMetadata]) also records
// the command's reply, encoded: as JSON text, or, for a reply type with a
// codec of its own ([WithReplyCodec]), as "b64:" followed by the codec's
// bytes in standard base64, so that every backend can store it as text.
const IdempotencyReplyMetadata = "idempotency_reply"

// DefaultIdempotencyWindow is the window of [WithIdempotency], in events.
const DefaultIdempotencyWindow = 1000

// cmdValuesKey is the context key of a command's values: its metadata
// ([WithMetadata]) and its idempotency key, under one key so that Ask
// finds both with one walk up the context.
type cmdValuesKey struct{}

// cmdValues is what [WithMetadata] and [WithIdempotencyKey] attach to a
// context. It is immutable.
type cmdValues struct {
	meta map[string]string
	key  string
}

// valuesFrom returns the command values attached to ctx, nil if none.
func valuesFrom(ctx context.Context) *cmdValues {
	v, _ := ctx.Value(cmdValuesKey{}).(*cmdValues)
	return v
}

// WithIdempotencyKey returns a context that gives the commands asked with
// it the idempotency key key. A command sent again with a key the entity
// has already recorded is answered from the first outcome instead of
// running again (see the package documentation, "Idempotent commands").
// Process managers and durable timers send their commands with keys
// derived from what triggered them, so a command re-sent after a crash
// acts once. An empty key means none. The entity type must keep keys
// ([WithIdempotency]): [Ask] refuses a keyed command to one that does not.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	cv := &cmdValues{key: key}
	if prev := valuesFrom(ctx); prev != nil {
		cv.meta = prev.meta
	}
	return context.WithValue(ctx, cmdValuesKey{}, cv)
}

// IdempotencyKeyFrom returns the key attached to ctx with
// [WithIdempotencyKey], and whether there is one.
func IdempotencyKeyFrom(ctx context.Context) (string, bool) {
	cv := valuesFrom(ctx)
	if cv == nil {
		return "", false
	}
	return cv.key, cv.key != ""
}

// WithIdempotency makes the entities of the kind keep the idempotency keys
// of the commands asked with one ([WithIdempotencyKey]) for the last
// [DefaultIdempotencyWindow] events: see [WithIdempotencyWindow].
func WithIdempotency() KindOption {
	return WithIdempotencyWindow(DefaultIdempotencyWindow)
}

// WithIdempotencyWindow makes the entities of the kind keep the
// idempotency keys of the commands asked with one ([WithIdempotencyKey])
// that were recorded in their last n events (n >= 1): a command sent
// again with such a key is answered from its first outcome and does not
// run again. Replies are encoded as JSON unless their type has a codec
// ([WithReplyCodec]).
//
// An entity holds at most n keys and their replies in memory, and only
// once it has had a keyed command. Recovery reads the events of the
// window back from the log, those before a snapshot included: up to n
// events more per recovery that starts from a snapshot (they are read,
// not decoded or applied). A key recorded more than n events ago is
// forgotten, as are keys whose events were deleted
// ([WithDeleteEventsOnSnapshot], [Kind.Delete]): a command sent again
// that late runs again.
func WithIdempotencyWindow(n int) KindOption {
	return func(c *kindConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithIdempotencyWindow(%d): must be >= 1", ErrInvalid, n)
		}
		if c.idem == nil {
			c.idem = new(idemConfig)
		}
		c.idem.window = uint64(n)
		return nil
	}
}

// WithReplyCodec records the replies of type R of idempotent commands
// (see [WithIdempotencyWindow]) with codec instead of JSON: for replies
// that JSON cannot carry whole, such as an interface type, a type with
// unexported fields or a protobuf message (binarize.Value). It needs
// [WithIdempotency] or [WithIdempotencyWindow] among the options, and at
// most one codec per R.
func WithReplyCodec[R any](codec binarize.Codec[R]) KindOption {
	return func(c *kindConfig) error {
		if codec == nil {
			return fmt.Errorf("%w: WithReplyCodec[%v](nil)", ErrInvalid, reflect.TypeFor[R]())
		}
		if c.idem == nil {
			c.idem = new(idemConfig)
		}
		if findReplyCodec[R](c.idem.codecs) != nil {
			return fmt.Errorf("%w: WithReplyCodec: reply type %v has a codec already", ErrInvalid, reflect.TypeFor[R]())
		}
		c.idem.codecs = append(c.idem.codecs, replyCodecEntry{key: (*R)(nil), codec: codec})
		return nil
	}
}

// idemConfig is a kind's idempotency configuration; a kind without one
// refuses keyed commands.
type idemConfig struct {
	window uint64 // in events; 0 until an option sets it
	codecs []replyCodecEntry
}

// replyCodecEntry is the codec of one reply type R: key is (*R)(nil), as
// in requestPools, and codec a binarize.Codec[R].
type replyCodecEntry struct {
	key   any
	codec any
}

// findReplyCodec returns the codec of reply type R, nil if it has none.
func findReplyCodec[R any](cs []replyCodecEntry) binarize.Codec[R] {
	for _, e := range cs {
		if _, ok := e.key.(*R); ok {
			return e.codec.(binarize.Codec[R])
		}
	}
	return nil
}

// replyB64 prefixes a reply encoded by a codec of its own; JSON text never
// starts with it.
const replyB64 = "b64:"

// encodeReply returns reply as IdempotencyReplyMetadata records it. cmd is
// the command, for the error.
func encodeReply[R any](cs []replyCodecEntry, cmd any, reply R) (string, error) {
	if c := findReplyCodec[R](cs); c != nil {
		b, err := c.Encode(reply)
		if err != nil {
			return "", fmt.Errorf("command %T: encode reply %v with its codec: %w", cmd, reflect.TypeFor[R](), err)
		}
		return replyB64 + base64.StdEncoding.EncodeToString(b), nil
	}
	if t := reflect.TypeFor[R](); t.Kind() == reflect.Interface {
		return "", fmt.Errorf("command %T: reply type %v is an interface, which JSON cannot decode into the reply's own type: register a codec for it with WithReplyCodec", cmd, t)
	}
	b, err := json.Marshal(reply)
	if err != nil {
		return "", fmt.Errorf("command %T: encode reply %v as JSON: %w (register a codec for it with WithReplyCodec)", cmd, reflect.TypeFor[R](), err)
	}
	return string(b), nil
}

// decodeReply returns the reply that encodeReply recorded as s.
func decodeReply[R any](cs []replyCodecEntry, cmd any, s string) (R, error) {
	var reply R
	c := findReplyCodec[R](cs)
	b64, isB64 := strings.CutPrefix(s, replyB64)
	switch {
	case c != nil && !isB64:
		return reply, fmt.Errorf("command %T: reply %v was recorded as JSON, but the type now has a codec (WithReplyCodec)", cmd, reflect.TypeFor[R]())
	case c == nil && isB64:
		return reply, fmt.Errorf("command %T: reply %v was recorded with a codec of its own, but the type now has none (WithReplyCodec)", cmd, reflect.TypeFor[R]())
	case c != nil:
		b, err := base64.StdEncoding.DecodeString(b64)
		if err == nil {
			reply, err = c.Decode(b)
		}
		if err != nil {
			return reply, fmt.Errorf("command %T: decode reply %v with its codec: %w", cmd, reflect.TypeFor[R](), err)
		}
		return reply, nil
	}
	if err := json.Unmarshal([]byte(s), &reply); err != nil {
		return reply, fmt.Errorf("command %T: decode reply %v from JSON: %w", cmd, reflect.TypeFor[R](), err)
	}
	return reply, nil
}

// replyError is the error of a command sent again whose recorded reply
// cannot be decoded: the command took effect, its reply is lost to the
// caller.
type replyError struct {
	typ, id, key string
	seq          uint64
	err          error
}

func (e *replyError) Error() string {
	return fmt.Sprintf("entity: %s/%s: idempotency key %q, recorded at seq %d: the command took effect, but its recorded reply cannot be read: %v",
		eventlog.FormatID(e.typ), eventlog.FormatID(e.id), e.key, e.seq, e.err)
}

// Is reports whether target is [ErrOutcomeUnknown]: the command did take
// effect, which an error that does not match it would deny.
func (e *replyError) Is(target error) bool { return target == ErrOutcomeUnknown }

func (e *replyError) Unwrap() error { return e.err }

// idemRecord is a key's record: the Seq and Position of the event that
// carries it, and the reply as IdempotencyReplyMetadata holds it.
type idemRecord struct {
	seq, pos uint64
	reply    string
}

// idemWindow is an entity's recent idempotency keys: those recorded in its
// last window events. It is owned by the entity's busy holder.
type idemWindow struct {
	byKey map[string]idemRecord
	// order lists the keys in the order recorded (by Seq), from head on,
	// for eviction; a key recorded again is listed again.
	order []idemKeySeq
	head  int
}

type idemKeySeq struct {
	key string
	seq uint64
}

// add records key at rec, recorded at or before Seq cur, and forgets the
// keys recorded window events or more before cur.
func (w *idemWindow) add(key string, rec idemRecord, cur, window uint64) {
	if w.byKey == nil {
		w.byKey = make(map[string]idemRecord)
	}
	w.byKey[key] = rec
	w.order = append(w.order, idemKeySeq{key, rec.seq})
	w.evict(cur, window)
}

// evict forgets the keys recorded window events or more before Seq cur.
func (w *idemWindow) evict(cur, window uint64) {
	for w.head < len(w.order) && w.order[w.head].seq+window <= cur {
		ks := w.order[w.head]
		if r, ok := w.byKey[ks.key]; ok && r.seq == ks.seq {
			delete(w.byKey, ks.key)
		}
		w.order[w.head] = idemKeySeq{}
		w.head++
	}
	if w.head > 32 && w.head*2 > len(w.order) {
		n := copy(w.order, w.order[w.head:])
		clear(w.order[n:])
		w.order, w.head = w.order[:n], 0
	}
}

// idemView is what the core needs to answer keyed commands: the kind's
// configuration (nil: keys are off) and the entity's window (nil: no key
// recorded).
type idemView struct {
	cfg *idemConfig
	w   *idemWindow
}

// idemAnswer is the answer of a keyed command from an earlier outcome:
// from the window (pos is the record's Position), or from a command
// earlier in its own group (inBatch: the Position is the group's append's).
type idemAnswer struct {
	key     string
	seq     uint64
	pos     uint64
	reply   string
	inBatch bool
}

// idemRecorded is a key that a command of a group records.
type idemRecorded struct {
	key   string
	seq   uint64 // of the command's last event
	reply string
}

// answerFor returns the earlier outcome of key: recorded by a command
// earlier in the group d is deciding, or in the window.
func (v idemView) answerFor(d *decisionKeys, key string) (idemAnswer, bool) {
	for i := len(d.recorded) - 1; i >= 0; i-- {
		if r := &d.recorded[i]; r.key == key {
			return idemAnswer{key: key, seq: r.seq, reply: r.reply, inBatch: true}, true
		}
	}
	if v.w != nil {
		if r, ok := v.w.byKey[key]; ok {
			return idemAnswer{key: key, seq: r.seq, pos: r.pos, reply: r.reply}, true
		}
	}
	return idemAnswer{}, false
}

// decisionKeys is the part of a decision about keyed commands.
type decisionKeys struct {
	// recorded lists the keys the group's commands record, in order.
	recorded []idemRecorded
	// answers holds the answers of the commands answered from an earlier
	// outcome; outcome.answer indexes it from 1.
	answers []idemAnswer
}

func (d *decisionKeys) reset() {
	clearEach(d.recorded)
	clearEach(d.answers)
	d.recorded, d.answers = d.recorded[:0], d.answers[:0]
}

// recordKey makes the last of events, the last event of command c, which
// succeeded, record key and c's reply, and notes the key as recorded at
// Seq seq by the group.
func recordKey[S, E any](d *decisionKeys, cfg *idemConfig, typ, id string, c command[S, E], key string, events []eventlog.Event, seq uint64) error {
	var reply string
	err := guard(typ, id, func() error {
		var err error
		reply, err = c.encodeReply(cfg.codecs)
		return err
	})
	if err != nil {
		if isPanic(err) {
			return err
		}
		return fmt.Errorf("%w: %s/%s: idempotency key %q: %w", ErrInvalid, eventlog.FormatID(typ), eventlog.FormatID(id), key, err)
	}
	last := &events[len(events)-1]
	md := make(map[string]string, len(last.Metadata)+2)
	maps.Copy(md, last.Metadata)
	md[IdempotencyKeyMetadata], md[IdempotencyReplyMetadata] = key, reply
	last.Metadata = md
	d.recorded = append(d.recorded, idemRecorded{key: key, seq: seq, reply: reply})
	return nil
}

// errKeysOff is the cause of the error of a keyed command to a kind that
// keeps no keys.
var errKeysOff = errors.New("the entity type keeps no idempotency keys (WithIdempotency)")

// answerRecorded answers p, a keyed command, from the earlier outcome a:
// its reply decoded, and its Position. appendPos is the Position of the
// append of p's group.
func (in *instance[S, E]) answerRecorded(p pending[S, E], a *idemAnswer, appendPos uint64) error {
	if err := guard(in.kind.def.Name, in.id, func() error { return p.decodeReply(in.kind.cfg.idem.codecs, a.reply) }); err != nil {
		return &replyError{typ: in.kind.def.Name, id: in.id, key: a.key, seq: a.seq, err: err}
	}
	if a.inBatch {
		p.setPosition(appendPos)
	} else {
		p.setPosition(a.pos)
	}
	return nil
}

// recordKeys adds the keys the group just appended recorded to the
// entity's window, then forgets those that fell out of it; pos is the
// append's Position.
func (in *instance[S, E]) recordKeys(recorded []idemRecorded, pos uint64) {
	cfg := in.kind.cfg.idem
	if cfg == nil {
		return
	}
	if len(recorded) > 0 && in.idem == nil {
		in.idem = new(idemWindow)
	}
	if in.idem == nil {
		return
	}
	for _, r := range recorded {
		in.idem.add(r.key, idemRecord{seq: r.seq, pos: pos, reply: r.reply}, in.seq, cfg.window)
	}
	in.idem.evict(in.seq, cfg.window)
}

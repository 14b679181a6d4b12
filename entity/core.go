package entity

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// The pure core of command handling: [decide] takes an entity's state and
// Seq and a group of commands, runs their handlers in order, each against
// the state the ones before it left, and returns the events to append in
// one append, each command's outcome, and whether the entity must recover
// before its next command. It takes no locks, starts no goroutines and
// does no I/O: the runtime's shell (instance.go) persists the events and
// answers the callers, [Execute] and package entitytest run it for one
// command.

// command is a command as the core sees it, its reply type erased.
type command[S, E any] interface {
	// start marks the command started; false if its caller gave up first,
	// and then it must not run.
	start() bool
	// run runs the handler, keeping its reply.
	run(tx *Tx[S, E]) error
	// metadata is the command's metadata, which its events carry.
	metadata() map[string]string
	// txRoom returns room for the Tx given to its handler, nil if it has
	// none: a handler gets the Tx through an interface, which would move a
	// local Tx to the heap.
	txRoom() *Tx[S, E]
	// idemKey is the command's idempotency key, "" for none.
	idemKey() string
	// encodeReply returns the reply run kept, encoded for
	// IdempotencyReplyMetadata.
	encodeReply(codecs []replyCodecEntry) (string, error)
}

// outcome is what the core decided for one command.
type outcome struct {
	// err is the command's own failure: its rejection, a panic in its
	// handler or Apply, or an event it persisted that could not be
	// encoded.
	err error
	// own: err stands even if the group's append fails. It is set for the
	// command whose failure may have modified the state, the last of its
	// group; a rejection the others' state led to is replaced by the
	// append's error, since that state may never have been.
	own bool
	// skipped: the caller gave up before the command started; it did not
	// run and has no answer to get.
	skipped bool
	// persisted: the command succeeded with events to append.
	persisted bool
	// answer, if not 0, says that the command, a keyed one, did not run:
	// it is answered from an earlier outcome, decision.answers[answer-1].
	answer int32
}

// decision is the core's verdict on a group of commands. Its slices are
// reused from one group to the next: the shell reads them before the next
// decide.
type decision[S, E any] struct {
	// state and seq are the entity's after the group's events.
	state S
	seq   uint64
	// events is the log form of every event of the group, Seqs seq0+1 on,
	// to append in one atomic append.
	events []eventlog.Event
	// outcomes has one entry per command consumed, in order.
	outcomes []outcome
	// recover reports that a failed command may have modified the state
	// in place (a panic, a failure after Persist): the entity must recover
	// from the log before its next command.
	recover bool

	evBuf []E // reused for the events a handler persists
	// keys is about the group's keyed commands.
	keys decisionKeys

	// data holds the Data of events, if the codec appends
	// (binarize.AppendEventCodec). It is reused from one group to the
	// next: decide runs only when the previous group's append is over
	// (Append returned, or AppendAsync called done), and the shell drops
	// it after an Append that failed, which the log may still be using.
	data []byte
}

// maxDataRetain caps the buffer of event Data a decision keeps for the
// next group, so one huge event does not pin its memory.
const maxDataRetain = 16 << 10

// decide runs commands from the front of cmds against (state, seq) and
// fills d. It stops after a command whose failure may have left the state
// modified, so the rest run against a recovered state, and returns how many
// commands it consumed. With keys on (idem.cfg), a keyed command whose key
// the window or a command before it in the group recorded does not run:
// its outcome says where its answer is; a keyed command that persists
// records its key and reply in the metadata of its last event.
func decide[S, E any, C command[S, E]](ctx context.Context, def *Type[S, E], id string, state S, seq uint64, cmds []C, d *decision[S, E], idem idemView) int {
	d.events, d.outcomes, d.recover = d.events[:0], d.outcomes[:0], false
	if idem.cfg != nil {
		d.keys.reset()
	}
	if cap(d.data) > maxDataRetain {
		d.data = nil
	}
	d.data = d.data[:0]
	consumed := 0
	for _, c := range cmds {
		consumed++
		if !c.start() {
			d.outcomes = append(d.outcomes, outcome{skipped: true})
			continue
		}
		var key string
		if idem.cfg != nil {
			if key = c.idemKey(); key != "" {
				if a, ok := idem.answerFor(&d.keys, key); ok {
					d.keys.answers = append(d.keys.answers, a)
					// An answer from the window stands whatever the
					// group's append does; one from this group shares
					// its fate.
					d.outcomes = append(d.outcomes, outcome{own: !a.inBatch, answer: int32(len(d.keys.answers))})
					continue
				}
			}
		}
		tx := c.txRoom()
		if tx == nil {
			tx = new(Tx[S, E])
		}
		// Field by field: a Tx is in a recycled request, on the heap, and
		// a whole-struct copy there is a bulk write barrier while the GC
		// marks.
		tx.def, tx.id, tx.state, tx.seq, tx.meta, tx.events = def, id, state, seq, c.metadata(), d.evBuf[:0]
		err := guard(def.Name, id, func() error { return c.run(tx) })
		dirty, persisted := false, len(tx.events) > 0
		switch {
		case err == nil:
			mark := len(d.events)
			d.events, d.data, err = encodeEvents(ctx, def, id, d.events, d.data, tx.events, seq, tx.meta)
			if err == nil && key != "" && persisted {
				err = recordKey(&d.keys, idem.cfg, def.Name, id, command[S, E](c), key, d.events, tx.seq)
			}
			if err != nil {
				d.events = d.events[:mark]
				dirty = true
			} else {
				state, seq = tx.state, tx.seq
			}
		case isPanic(err):
			dirty = true
		default:
			dirty = len(tx.events) > 0
		}
		clearEach(tx.events)
		if cap(tx.events) <= 64 {
			d.evBuf = tx.events[:0]
		}
		var zero S
		tx.def, tx.id, tx.state, tx.meta, tx.events = nil, "", zero, nil, nil
		d.outcomes = append(d.outcomes, outcome{err: err, own: dirty, persisted: persisted && err == nil})
		if dirty {
			d.recover = true
			break
		}
	}
	d.state, d.seq = state, seq
	return consumed
}

// encodeEvents appends the log form of evs, which follow Seq seq, to out,
// encoding under ctx if the codec takes one, and writing their Data to the
// end of data if the codec can (see decision.data). It returns out and
// data extended.
func encodeEvents[S, E any](ctx context.Context, def *Type[S, E], id string, out []eventlog.Event, data []byte, evs []E, seq uint64, meta map[string]string) ([]eventlog.Event, []byte, error) {
	cc := def.contextEvents()
	var ac binarize.AppendEventCodec[E]
	if cc == nil && def.resolved {
		ac = def.appender
	}
	for i, e := range evs {
		var ev eventlog.Event
		err := guard(def.Name, id, func() error {
			var err error
			switch {
			case cc != nil:
				ev.Name, ev.Revision, ev.Data, err = cc.EncodeContext(ctx, e)
			case ac != nil:
				var b []byte
				if ev.Name, ev.Revision, b, err = ac.AppendEncode(data, e); err == nil {
					// Capped, so nothing appended later can reach it.
					ev.Data, data = b[len(data):len(b):len(b)], b
				}
			default:
				ev.Name, ev.Revision, ev.Data, err = def.Events.Encode(e)
			}
			return err
		})
		if err != nil {
			return out, data, fmt.Errorf("entity: encode event %T of %s/%s at seq %d: %w", e, eventlog.FormatID(def.Name), eventlog.FormatID(id), seq+uint64(i)+1, err)
		}
		ev.Metadata = meta
		out = append(out, ev)
	}
	return out, data, nil
}

// clearEach zeroes s an element at a time: for the few elements of a
// command's events, a write barrier per pointer costs less than the bulk
// barrier of clear while the GC marks.
func clearEach[T any](s []T) {
	var zero T
	for i := range s {
		s[i] = zero
	}
}

// guard runs f and turns a panic into a *PanicError naming the entity: the
// one panic guard around user code (handlers, Apply, codecs).
func guard(typ, id string, f func() error) (err error) {
	returned := false
	defer func() {
		if returned {
			return // no panic: skip recover, which costs more than the check
		}
		if v := recover(); v != nil {
			err = &PanicError{EntityType: typ, EntityID: id, Value: v, Stack: debug.Stack()}
		}
	}()
	err = f()
	returned = true
	return err
}

// isPanic reports whether err is a *PanicError. It is a function of its own
// so that the target variable of errors.As is allocated only when a
// command failed.
func isPanic(err error) bool {
	var pe *PanicError
	return errors.As(err, &pe)
}

// Result is the outcome of running one command with [Execute].
type Result[S, E, R any] struct {
	// Events are the events the command persisted; nil when it failed.
	Events []E
	// State and Seq are the entity's state and Seq after the events; the
	// state given to Execute when the command failed.
	State S
	Seq   uint64
	// Reply is the handler's reply; the zero R when it failed.
	Reply R
	// Err is the handler's error, a *PanicError if user code panicked, or
	// the error of encoding an event the command persisted.
	Err error
}

// Execute runs cmd against an entity (id, seq, state) with the runtime's own
// core, as the runtime does for a command that finds its entity idle,
// without persisting anything: used by entitytest. Its events are encoded
// with the type's codec, as the runtime would before appending them, so an
// event that cannot be encoded fails the command. A panic in the handler,
// in Apply or in the codec becomes a *PanicError. Note that Apply may have
// modified state in place before a failure.
func Execute[S, E, R any](def *Type[S, E], id string, seq uint64, state S, meta map[string]string, cmd Command[S, E, R]) Result[S, E, R] {
	c := &executed[S, E, R]{cmd: cmd, meta: meta}
	var d decision[S, E]
	decide(context.Background(), def, id, state, seq, []*executed[S, E, R]{c}, &d, idemView{})
	if err := d.outcomes[0].err; err != nil {
		return Result[S, E, R]{State: state, Seq: seq, Err: err}
	}
	return Result[S, E, R]{Events: c.events, State: d.state, Seq: d.seq, Reply: c.reply}
}

// executed is the command of an [Execute], keeping its reply and events.
type executed[S, E, R any] struct {
	cmd    Command[S, E, R]
	meta   map[string]string
	reply  R
	events []E
}

func (c *executed[S, E, R]) start() bool                 { return true }
func (c *executed[S, E, R]) metadata() map[string]string { return c.meta }
func (c *executed[S, E, R]) txRoom() *Tx[S, E]           { return nil }
func (c *executed[S, E, R]) idemKey() string             { return "" }

func (c *executed[S, E, R]) encodeReply(codecs []replyCodecEntry) (string, error) {
	return encodeReply(codecs, c.cmd, c.reply)
}

func (c *executed[S, E, R]) run(tx *Tx[S, E]) error {
	reply, err := c.cmd.Handle(tx)
	if err == nil {
		c.reply, c.events = reply, slices.Clone(tx.events)
	}
	return err
}

package postgreslog

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/errclass"
	"github.com/eventsourced-go/eventsourced/internal/rounds"
)

// appendReq is one Append waiting for its batch. It holds private copies of
// the events, because its caller may give up and reuse them while the batch
// is in flight. It is one allocation for the usual append of one small
// event, and recycled (see reqs) once answered.
type appendReq struct {
	ctx      context.Context
	typ, id  string
	expected uint64
	events   []reqEvent
	size     int // bytes of data and metadata
	// The answer goes to done if set (AppendAsync), else to reply.
	reply chan appendResult
	done  func(pos uint64, err error)
	// group is the round group an AppendRound joined, nil for none: it
	// is left once done has returned.
	group *rounds.Group
	// slot is the append's place in the round its worker runs; only that
	// worker uses it.
	slot int

	one    [1]reqEvent
	inline [64]byte
}

// reqEvent is one event of an appendReq.
type reqEvent struct {
	name string
	rev  int64
	data []byte
	meta []byte // a JSON object; nil for no metadata
}

type appendResult struct {
	pos uint64
	err error
}

// replies recycles the reply channels of appends whose callers received
// their reply, so the channel is empty and nobody else holds it.
var replies = sync.Pool{New: func() any { return make(chan appendResult, 1) }}

// reqs recycles appendReqs. A request goes back only once nothing uses it
// any more: an asynchronous one when its done has returned (the worker
// that answers it touches it no more), a synchronous one when its caller
// has received the reply (not when the caller gave up waiting: the worker
// may still hold it then). Channels are never recycled with a request.
var reqs = sync.Pool{New: func() any { return new(appendReq) }}

// release returns r to reqs, holding on to nothing of its append.
func (r *appendReq) release() {
	*r = appendReq{}
	reqs.Put(r)
}

func newAppendReq(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, maxBytes int) (*appendReq, error) {
	size := 0
	for i := range events {
		size += len(events[i].Data)
	}
	if size > maxBytes {
		return nil, errclass.New(fmt.Sprintf("postgreslog: append to %s/%s: %d bytes of event data, more than the limit of %d (WithMaxAppendBytes)", eventlog.FormatID(typ), eventlog.FormatID(id), size, maxBytes), nil, ErrTooLarge, eventlog.ErrInvalid)
	}
	r := reqs.Get().(*appendReq)
	r.ctx, r.typ, r.id, r.expected = ctx, typ, id, expected
	if len(events) == 1 {
		r.events = r.one[:]
	} else {
		r.events = make([]reqEvent, len(events))
	}
	// One buffer holds the data of every event; empty data is stored as an
	// empty bytea, not NULL.
	buf := r.inline[:0:len(r.inline)]
	if size > len(r.inline) {
		buf = make([]byte, 0, size)
	}
	for i := range events {
		ev := &events[i]
		e := &r.events[i]
		e.name, e.rev = ev.Name, int64(ev.Revision)
		start := len(buf)
		buf = append(buf, ev.Data...)
		e.data = buf[start:len(buf):len(buf)]
		if len(ev.Metadata) > 0 {
			js, err := json.Marshal(ev.Metadata)
			if err != nil {
				r.release()
				return nil, fmt.Errorf("%w: append to %s/%s: event %d metadata: %v", eventlog.ErrInvalid, eventlog.FormatID(typ), eventlog.FormatID(id), i, err)
			}
			e.meta = js
			size += len(js)
		}
	}
	if size > maxBytes {
		r.release()
		return nil, errclass.New(fmt.Sprintf("postgreslog: append to %s/%s: %d bytes of event data and metadata, more than the limit of %d (WithMaxAppendBytes)", eventlog.FormatID(typ), eventlog.FormatID(id), size, maxBytes), nil, ErrTooLarge, eventlog.ErrInvalid)
	}
	r.size = size
	return r, nil
}

// answer delivers res to the append's caller, once. Whoever answers must
// not touch r afterwards: it may be recycled and serve another append.
func (r *appendReq) answer(res appendResult) {
	var lv rounds.Leaves
	r.answerLeaving(res, &lv)
	lv.Flush()
}

// answerLeaving is answer that records the leaving of r's round group, if
// it has one, in lv: the caller flushes lv.
func (r *appendReq) answerLeaving(res appendResult, lv *rounds.Leaves) {
	if done := r.done; done != nil {
		done(res.pos, res.err)
		g := r.group
		r.release()
		lv.Add(g)
		return
	}
	r.reply <- res
}

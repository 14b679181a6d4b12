package postgreslog

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/errclass"
)

// appendReq is one Append waiting for its batch. It holds private copies of
// the events, because its caller may give up and reuse them while the batch
// is in flight. It is one allocation for the usual append of one small
// event.
type appendReq struct {
	ctx      context.Context
	typ, id  string
	expected uint64
	events   []reqEvent
	size     int // bytes of data and metadata
	// The answer goes to done if set (AppendAsync), else to reply.
	reply chan appendResult
	done  func(pos uint64, err error)

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

func newAppendReq(ctx context.Context, typ, id string, expected uint64, events []eventlog.Event, maxBytes int) (*appendReq, error) {
	size := 0
	for i := range events {
		size += len(events[i].Data)
	}
	if size > maxBytes {
		return nil, errclass.New(fmt.Sprintf("postgreslog: append to %s/%s: %d bytes of event data, more than the limit of %d (WithMaxAppendBytes)", eventlog.FormatID(typ), eventlog.FormatID(id), size, maxBytes), nil, ErrTooLarge, eventlog.ErrInvalid)
	}
	r := &appendReq{ctx: ctx, typ: typ, id: id, expected: expected}
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
				return nil, fmt.Errorf("%w: append to %s/%s: event %d metadata: %v", eventlog.ErrInvalid, eventlog.FormatID(typ), eventlog.FormatID(id), i, err)
			}
			e.meta = js
			size += len(js)
		}
	}
	if size > maxBytes {
		return nil, errclass.New(fmt.Sprintf("postgreslog: append to %s/%s: %d bytes of event data and metadata, more than the limit of %d (WithMaxAppendBytes)", eventlog.FormatID(typ), eventlog.FormatID(id), size, maxBytes), nil, ErrTooLarge, eventlog.ErrInvalid)
	}
	r.size = size
	return r, nil
}

// answer delivers res to the append's caller, once.
func (r *appendReq) answer(res appendResult) {
	if r.done != nil {
		r.done(res.pos, res.err)
		return
	}
	r.reply <- res
}

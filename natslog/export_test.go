package natslog

import "context"

// LastResult is what a lookup of an entity's last message returned.
type LastResult struct {
	Found, Marker bool
	Seq, Sseq     uint64
	Err           error
}

// LookupLasts looks up the last messages of the entities (typ, ids[i]):
// batched as one batch of the readers if batched, else one by one. It also
// returns how many requests the readers sent.
func LookupLasts(l *Log, typ string, ids []string, batched bool) ([]LastResult, uint64, error) {
	ctx := context.Background()
	before := l.lastQueries.Load()
	reqs := make([]*lastReq, len(ids))
	out := make([]LastResult, len(ids))
	for i, id := range ids {
		subj, err := l.subjects.entity(typ, id)
		if err != nil {
			return nil, 0, err
		}
		if !batched {
			s, found, err := l.last(ctx, subj)
			out[i] = LastResult{Found: found, Marker: s.marker, Seq: s.seq, Sseq: s.sseq, Err: err}
			continue
		}
		reqs[i] = &lastReq{ctx: ctx, subj: subj, reply: make(chan lastRes, 1)}
	}
	if batched {
		l.lastBatch(reqs)
		for i, r := range reqs {
			res := <-r.reply
			out[i] = LastResult{Found: res.found, Marker: res.s.marker, Seq: res.s.seq, Sseq: res.s.sseq, Err: res.err}
		}
	}
	return out, l.lastQueries.Load() - before, nil
}

// LookupLastsIn looks up the last messages of the entities (typ, ids[i]) as
// one batch of the readers, each lookup under ctxs[i]; it returns the
// number of requests the readers sent.
func LookupLastsIn(l *Log, ctxs []context.Context, typ string, ids []string) (uint64, error) {
	before := l.lastQueries.Load()
	reqs := make([]*lastReq, len(ids))
	for i, id := range ids {
		subj, err := l.subjects.entity(typ, id)
		if err != nil {
			return 0, err
		}
		reqs[i] = &lastReq{ctx: ctxs[i], subj: subj, reply: make(chan lastRes, 1)}
	}
	l.lastBatch(reqs)
	for _, r := range reqs {
		if res := <-r.reply; res.err != nil {
			return 0, res.err
		}
	}
	return l.lastQueries.Load() - before, nil
}

// InflightCalls returns how many requests of l wait for their replies.
func InflightCalls(l *Log) int {
	l.inbox.mu.Lock()
	defer l.inbox.mu.Unlock()
	return l.inbox.inflight
}

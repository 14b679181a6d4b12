package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The floors: the request/reply shape of the workload with nothing of a
// runtime in it. One caller per entity sends its commands one after the
// other and waits for each to be stored, as entity.Ask's callers do; the
// row or message is written by the cheapest client code that keeps that
// shape, with no decide, no encoding (the event's bytes are made once) and
// no checks of our own. What such a floor costs per command on the client
// is the part of a runtime's CPU/command that the shape of the workload
// takes, not the runtime (see the postgres and nats scenarios' notes).

// copyRound is one group commit of the COPY floor: the rows its callers
// queued, and the channel closed, with err set, once the COPY is done.
type copyRound struct {
	rows [][]any
	done chan struct{}
	err  error
}

// pgRawCopyCallers is the PostgreSQL floor: every caller queues its row
// (the same columns raw-copy COPYs) and waits for its round; -pg-copy-conns
// workers each take the whole queue and COPY it, so the rounds pipeline
// like the Log's transactions. Positions are numbered as the workers take
// rows; nothing checks Seqs.
func pgRawCopyCallers(ctx context.Context, env *Env) (Result, error) {
	rr, err := newRawRows(ctx, env, false)
	if err != nil {
		return Result{}, err
	}
	pe := rr.pe
	defer pe.close()
	var (
		mu       sync.Mutex // guards cur
		cur      = &copyRound{done: make(chan struct{})}
		wake     = make(chan struct{}, 1)
		position atomic.Int64
		wg       sync.WaitGroup
	)
	bctx, cancel := Budget(ctx, env, 90*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(bctx)
	defer func() {
		stop()
		wg.Wait()
	}()
	for range max(1, pgFlags.copyConns) {
		wg.Go(func() {
			for {
				select {
				case <-wake:
				case <-wctx.Done():
					return
				}
				mu.Lock()
				r := cur
				cur = &copyRound{done: make(chan struct{})}
				mu.Unlock()
				if len(r.rows) == 0 {
					continue
				}
				first := position.Add(int64(len(r.rows))) - int64(len(r.rows))
				for i, row := range r.rows {
					row[3] = first + int64(i) + 1
				}
				_, r.err = pe.pool.CopyFrom(wctx, rr.table, rr.cols, pgx.CopyFromRows(r.rows))
				close(r.done)
			}
		})
	}
	res, err := Drive(bctx, env, rr.n, rr.cmds, func(ctx context.Context, c, i int) error {
		row := rr.row(c, i+1, 0) // the position is the worker's
		mu.Lock()
		r := cur
		r.rows = append(r.rows, row)
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default: // a worker is woken already
		}
		select {
		case <-r.done:
			return r.err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return res, err
	}
	if err := countRows(ctx, pe.pool, rr.table.Sanitize(), res); err != nil {
		return Result{}, err
	}
	pe.note(&res)
	return res, nil
}

// natsRawAsyncCallers is the NATS floor: every caller builds the message
// natslog would (Es-Seq, Es-Event, the expected last subject sequence from
// its previous ack) and publishes it with the stock client's
// PublishMsgAsync, then waits for its ack: request/reply over the client's
// one pipeline. Its window is one publish per caller, so no caller stalls
// on it (with -nats-raw-pending's 4,000, 6,000 callers would wait 200ms at
// a time and the floor would cost twice the CPU).
func natsRawAsyncCallers(ctx context.Context, env *Env) (Result, error) {
	n, _ := natsSize(env)
	ne, err := natsSetup(ctx, jetstream.WithPublishAsyncMaxPending(n))
	if err != nil {
		return Result{}, err
	}
	defer ne.close()
	res, err := driveRawCallers(ctx, env, ne, func(ctx context.Context, m *nats.Msg) (uint64, error) {
		var f jetstream.PubAckFuture
		for {
			var err error
			if f, err = ne.js.PublishMsgAsync(m); err == nil {
				break
			}
			// A full pipeline stalls the caller for at most 200ms, then
			// refuses; nothing was sent, try again.
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
				return 0, err
			}
		}
		select {
		case ack := <-f.Ok():
			return ack.Sequence, nil
		case err := <-f.Err():
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	if err != nil {
		return res, err
	}
	if res.Metrics == nil { // with -nats-url, no server CPU was added
		res.Metrics = map[string]float64{}
	}
	res.Metrics["max pending"] = float64(n)
	return res, nil
}

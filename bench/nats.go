package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The nats scenario: 10,000 entities, one caller each, every command
// persisting one event, request/reply, on a NATS server (nats-server/v2,
// JetStream, file storage in a fresh temporary directory per system run)
// that runs in a helper process of its own (helper.go), so that the
// system's CPU/command is the client's alone; or on -nats-url. The subject is the entity runtime on natslog. It is
// compared with
//   - raw-async, the ceiling: this program publishing the messages natslog
//     writes for the same workload (same subjects, headers, payloads and
//     expected-last-subject-sequence checks) to the same stream with
//     jetstream's PublishMsgAsync from one goroutine, as fast as the acks
//     come back, no runtime;
//   - raw-async-nocheck: the same without the expected-sequence header, to
//     show what the server's optimistic concurrency check costs;
//   - raw-sync: the same messages, but request/reply like the workload: one
//     goroutine per entity, each publishing its entity's messages with
//     jetstream's synchronous PublishMsg, the expected sequence taken from
//     the previous ack; what the stock client costs per round trip;
//   - log-direct: no runtime, one goroutine per entity calling natslog's
//     Append itself (encode, conditional append, apply), to separate the
//     log's cost from the runtime's.

var natsFlags struct {
	url      string
	entities int
	commands int
	pending  int
}

func init() {
	RegisterFlags(func(fs *flag.FlagSet) {
		fs.StringVar(&natsFlags.url, "nats-url", "", "nats: URL of a NATS server with JetStream (default: a nats-server per system run, in a helper process)")
		fs.IntVar(&natsFlags.entities, "nats-entities", 10_000, "nats: entities (one caller each)")
		fs.IntVar(&natsFlags.commands, "nats-commands", 10, "nats: commands per entity, one after the other")
		fs.IntVar(&natsFlags.pending, "nats-raw-pending", 4000, "nats: max async publishes in flight for the raw ceilings")
	})
	Register(Scenario{
		Name:      "nats",
		Doc:       "10,000 entities, 1 event/command, request/reply, on a local NATS server in its own process (JetStream, file storage)",
		Unit:      "commands",
		Reference: "raw-async",
		Timeout:   4 * time.Minute,
		Targets: []Target{{
			Desc: "eventsourced >= 70% of raw async publish of the same messages",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", "raw-async")
				return fmt.Sprintf("%.0f%%", 100*v), ok && v >= 0.7
			},
		}, {
			Desc: "eventsourced >= 1.2x the stock client's request/reply (raw-sync)",
			Check: func(s *Summary) (string, bool) {
				v, ok := s.Ratio("eventsourced", "raw-sync")
				return fmt.Sprintf("%.2fx", v), ok && v >= 1.2
			},
		}, cpuTarget("eventsourced", 6, "raw-async", "raw-async-callers")},
		Systems: []System{
			{Name: "eventsourced", Role: Subject, Doc: "entity.Ask on an entity.System over natslog (pipelined publishes, expected-sequence check)", Run: natsEventsourced},
			{Name: "raw-async", Role: Ceiling, Doc: "the same messages, headers and expected-sequence checks, jetstream PublishMsgAsync from one goroutine, no runtime", Run: natsRaw(true)},
			{Name: "raw-async-nocheck", Role: Variant, Doc: "raw-async without the expected-last-subject-sequence header", Run: natsRaw(false)},
			{Name: "raw-async-callers", Role: Variant, Doc: "the floor of the request/reply shape: one goroutine per entity, jetstream PublishMsgAsync then wait for its ack, the expected sequence from the previous ack; no runtime, no encoding", Run: natsRawAsyncCallers},
			{Name: "raw-sync", Role: Variant, Doc: "the same messages, one goroutine per entity, jetstream PublishMsg (request/reply) with the expected sequence from the previous ack", Run: natsRawSync},
			{Name: "log-direct", Role: Variant, Doc: "no runtime: one goroutine per entity encodes and calls natslog's Append itself", Run: natsLogDirect},
		},
	})
}

// natsSize returns the scenario's entities and commands per entity.
func natsSize(env *Env) (entities, commands int) {
	return env.Scale(natsFlags.entities, 200), env.Scale(natsFlags.commands, 3)
}

// natsEnv is a connection to a server, a helper process or -nats-url, with the stream
// and bucket set up under names unique to the run.
type natsEnv struct {
	srv    *helper // the nats-server process; nil with -nats-url
	dir    string
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string
	prefix string
	opts   []natslog.Option // of the Log
}

func natsSetup(ctx context.Context, jsOpts ...jetstream.JetStreamOpt) (*natsEnv, error) {
	e := &natsEnv{}
	url := natsFlags.url
	if url == "" {
		dir, err := os.MkdirTemp("", "bench-nats-")
		if err != nil {
			return nil, err
		}
		e.dir = dir
		if e.srv, err = startHelper(helperSpec{Kind: "nats-server", Dir: dir}); err != nil {
			e.close()
			return nil, err
		}
		url = e.srv.addr
	}
	var err error
	if e.nc, err = nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectBufSize(-1)); err != nil {
		e.close()
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc, jsOpts...); err != nil {
		e.close()
		return nil, err
	}
	// Unique names, so runs against one external server do not mix.
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	e.stream, e.prefix = "bench_"+suffix, "bench_"+suffix
	e.opts = []natslog.Option{natslog.WithStream(e.stream), natslog.WithPrefix(e.prefix)}
	if err := natslog.Setup(ctx, e.js, append(e.opts, natslog.WithBucket("bench_snaps_"+suffix))...); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// serverCPU returns the server process's CPU time so far; 0 with
// -nats-url.
func (e *natsEnv) serverCPU() time.Duration {
	if e.srv == nil {
		return 0
	}
	return e.srv.cpu()
}

// setServerCPU adds the server's CPU per op since before to res's metrics
// (10 ms resolution).
func (e *natsEnv) setServerCPU(res *Result, before time.Duration) {
	if e.srv == nil || res.Ops == 0 {
		return
	}
	if res.Metrics == nil {
		res.Metrics = map[string]float64{}
	}
	res.Metrics["server CPU µs/op"] = float64((e.serverCPU() - before).Nanoseconds()) / 1e3 / float64(res.Ops)
}

// streamMsgs returns how many messages the stream holds.
func (e *natsEnv) streamMsgs(ctx context.Context) (uint64, error) {
	s, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func (e *natsEnv) close() {
	if e.js != nil && e.srv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = e.js.DeleteStream(ctx, e.stream)
		_ = e.js.DeleteKeyValue(ctx, "bench_snaps_"+e.stream[len("bench_"):])
		cancel()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.srv != nil {
		e.srv.close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

func natsEventsourced(ctx context.Context, env *Env) (Result, error) {
	ne, err := natsSetup(ctx)
	if err != nil {
		return Result{}, err
	}
	defer ne.close()
	log, err := natslog.New(ctx, ne.js, ne.opts...)
	if err != nil {
		return Result{}, err
	}
	defer log.Close()
	n, cmds := natsSize(env)
	var before nats.Statistics
	var srvBefore time.Duration
	res, err := runCounters(ctx, env, log, n, cmds, func() { before, srvBefore = ne.nc.Stats(), ne.serverCPU() })
	if err != nil {
		return res, err
	}
	after := ne.nc.Stats()
	ne.setServerCPU(&res, srvBefore)
	stored, err := ne.streamMsgs(ctx)
	if err != nil {
		return res, err
	}
	if stored != uint64(res.Ops) {
		return res, fmt.Errorf("the stream holds %d events after %d acknowledged commands", stored, res.Ops)
	}
	// Every command should cost one publish.
	res.Metrics["client msgs/command"] = float64(after.OutMsgs-before.OutMsgs) / float64(max(1, res.Ops))
	return res, nil
}

// natsLogDirect drives natslog without the entity runtime: caller c is
// entity c and appends its commands' events one after the other, as the
// runtime would, with the runtime's store timeout on each append.
func natsLogDirect(ctx context.Context, env *Env) (Result, error) {
	ne, err := natsSetup(ctx)
	if err != nil {
		return Result{}, err
	}
	defer ne.close()
	log, err := natslog.New(ctx, ne.js, ne.opts...)
	if err != nil {
		return Result{}, err
	}
	defer log.Close()
	n, cmds := natsSize(env)
	def := counterType()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = entityID(i)
	}
	states := make([]Counter, n)
	ctx, cancel := Budget(ctx, env, 90*time.Second)
	defer cancel()
	res, err := Drive(ctx, env, n, cmds, func(ctx context.Context, c, i int) error {
		ev := Incremented{By: 1}
		name, rev, data, err := def.Events.Encode(ev)
		if err != nil {
			return err
		}
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = log.Append(actx, def.Name, ids[c], uint64(i), eventlog.Event{Name: name, Revision: rev, Data: data})
		acancel()
		if err != nil {
			return err
		}
		states[c] = def.Apply(states[c], ev)
		return nil
	})
	if err != nil {
		return res, err
	}
	stored, err := ne.streamMsgs(ctx)
	if err != nil {
		return res, err
	}
	if stored != uint64(res.Ops) {
		return res, fmt.Errorf("the stream holds %d events after %d acknowledged appends", stored, res.Ops)
	}
	return res, nil
}

// natsRawSync publishes the messages of natsRaw request/reply, one goroutine
// per entity, each waiting for its ack before the next: the workload's shape
// with the stock client and no runtime.
func natsRawSync(ctx context.Context, env *Env) (Result, error) {
	ne, err := natsSetup(ctx)
	if err != nil {
		return Result{}, err
	}
	defer ne.close()
	return driveRawCallers(ctx, env, ne, func(ctx context.Context, m *nats.Msg) (uint64, error) {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		ack, err := ne.js.PublishMsg(pctx, m)
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	})
}

// driveRawCallers drives the workload's shape with no runtime: one
// goroutine per entity publishes natslog's messages for its events one
// after the other with publish, which returns the stream sequence of the
// message, the one the next message expects.
func driveRawCallers(ctx context.Context, env *Env, ne *natsEnv, publish func(ctx context.Context, m *nats.Msg) (uint64, error)) (Result, error) {
	w, err := newRawMsgs(ne, env)
	if err != nil {
		return Result{}, err
	}
	last := make([]uint64, w.n) // stream sequence of each entity's last message
	ctx, cancel := Budget(ctx, env, 90*time.Second)
	defer cancel()
	srvBefore := ne.serverCPU()
	res, err := Drive(ctx, env, w.n, w.cmds, func(ctx context.Context, c, i int) error {
		seq, err := publish(ctx, w.msg(c, i+1, last[c]))
		if err != nil {
			return fmt.Errorf("publish %s seq %d: %w", w.subjects[c], i+1, err)
		}
		last[c] = seq
		return nil
	})
	if err != nil {
		return res, err
	}
	ne.setServerCPU(&res, srvBefore)
	return res, nil
}

// natsRaw is the ceiling: the messages natslog publishes for the workload,
// published asynchronously from one goroutine in the order the workload
// commits them (round after round of one event per entity), so the stream
// sequence of every message, and so every expected-last-subject-sequence
// header, is known in advance. check false leaves that header out.
func natsRaw(check bool) func(ctx context.Context, env *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		var failed asyncFailures
		ne, err := natsSetup(ctx, jetstream.WithPublishAsyncMaxPending(natsFlags.pending), failed.handler())
		if err != nil {
			return Result{}, err
		}
		defer ne.close()
		w, err := newRawMsgs(ne, env)
		if err != nil {
			return Result{}, err
		}
		// Build every message before the clock starts, as natslog's would
		// be: Es-Seq, Es-Event, the expected sequence, the payload.
		total := w.n * w.cmds
		msgs := make([]*nats.Msg, 0, total)
		for r := range w.cmds {
			for e := range w.n {
				var last uint64
				if r > 0 {
					last = uint64((r-1)*w.n + e + 1)
				}
				m := w.msg(e, r+1, last)
				if !check {
					m.Header.Del("Nats-Expected-Last-Subject-Sequence")
				}
				msgs = append(msgs, m)
			}
		}
		ctx, cancel := Budget(ctx, env, 90*time.Second)
		defer cancel()
		srvBefore := ne.serverCPU()
		sw := startStopwatch()
		if err := publishAllAsync(ctx, env, ne.js, msgs); err != nil {
			return Result{}, err
		}
		elapsed, cpu := sw.stop()
		if err := failed.err(total); err != nil {
			return Result{}, err
		}
		stored, err := ne.streamMsgs(ctx)
		if err != nil {
			return Result{}, err
		}
		if stored != uint64(total) {
			return Result{}, fmt.Errorf("the stream holds %d messages, want %d", stored, total)
		}
		res := Result{
			Ops: int64(total), Elapsed: elapsed, CPU: cpu,
			Metrics: map[string]float64{"max pending": float64(natsFlags.pending)},
			Notes:   []string{"no per-message latency: one pipeline of async publishes"},
		}
		ne.setServerCPU(&res, srvBefore)
		return res, nil
	}
}

// publishAllAsync publishes msgs with PublishMsgAsync from this goroutine,
// one pipeline bounded by js's max pending, reporting progress, and waits
// for every ack (the callers count the failed ones through js's error
// handler).
func publishAllAsync(ctx context.Context, env *Env, js jetstream.JetStream, msgs []*nats.Msg) error {
	for i, m := range msgs {
		for {
			_, err := js.PublishMsgAsync(m)
			if err == nil {
				break
			}
			// A full pipeline (max pending) stalls the publisher for at
			// most 200ms, then refuses; nothing was sent, try again.
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || ctx.Err() != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
		}
		if i&1023 == 0 {
			env.Progress(int64(i), int64(len(msgs)))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for acks: %w", ctx.Err())
	}
}

// asyncFailures counts the asynchronous publishes that failed, through the
// handler it gives a JetStream context, and keeps the first error.
type asyncFailures struct {
	n     atomic.Int64
	first atomic.Value
}

func (f *asyncFailures) handler() jetstream.JetStreamOpt {
	return jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
		if f.n.Add(1) == 1 {
			f.first.Store(err)
		}
	})
}

// err reports the failures among total publishes, nil if none.
func (f *asyncFailures) err(total int) error {
	if k := f.n.Load(); k > 0 {
		return fmt.Errorf("%d of %d publishes failed, the first with %v", k, total, f.first.Load())
	}
	return nil
}

// rawMsgs is what the raw systems publish: the workload's size, a subject
// per entity and the bytes of its one event, made once.
type rawMsgs struct {
	n, cmds  int      // entities, commands per entity
	subjects []string // entity c's subject
	data     []byte   // the event's bytes
}

func newRawMsgs(ne *natsEnv, env *Env) (*rawMsgs, error) {
	_, _, data, err := counterType().Events.Encode(Incremented{By: 1})
	if err != nil {
		return nil, err
	}
	w := &rawMsgs{data: data}
	w.n, w.cmds = natsSize(env)
	w.subjects = make([]string, w.n)
	for i := range w.subjects {
		w.subjects[i] = ne.prefix + ".Counter." + entityID(i)
	}
	return w, nil
}

// msg is the message natslog would publish for entity c's event at seq,
// expecting last as the subject's last stream sequence.
func (w *rawMsgs) msg(c, seq int, last uint64) *nats.Msg {
	return &nats.Msg{Subject: w.subjects[c], Data: w.data, Header: nats.Header{
		"Es-Seq":                              []string{strconv.Itoa(seq)},
		"Es-Event":                            []string{"Incremented"},
		"Nats-Expected-Last-Subject-Sequence": []string{strconv.FormatUint(last, 10)},
	}}
}

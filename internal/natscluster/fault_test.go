package natscluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/natscluster"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// The test domain: a tally whose events record the operation id, so the
// log shows whether a command was stored twice, or one that failed was
// stored at all.

type Tally struct{ Sum int }

type TallyEvent interface{ tallyEvent() }

type Added struct {
	Op string
	N  int
}

func (Added) tallyEvent() {}

// Add persists Added and replies with the new sum.
type Add struct {
	Op string
	N  int
}

func (c Add) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) {
	return tx.Persist(Added{Op: c.Op, N: c.N}).Sum, nil
}

// Get replies with the sum.
type Get struct{}

func (Get) Handle(tx *entity.Tx[Tally, TallyEvent]) (int, error) { return tx.State().Sum, nil }

func tallyType() entity.Type[Tally, TallyEvent] {
	events := binarize.NewRegistry[TallyEvent](binarize.Msgpack)
	binarize.MustRegister[Added](events, "Added")
	return entity.Type[Tally, TallyEvent]{
		Name: "Tally",
		Apply: func(s Tally, e TallyEvent) Tally {
			if a, ok := e.(Added); ok {
				s.Sum += a.N
			}
			return s
		},
		Events: events,
		State:  binarize.Value[Tally](binarize.Msgpack),
	}
}

const (
	faultEntities  = 1000
	faultWorkers   = 48
	faultAskWait   = 2 * time.Second // each command's ctx
	snapshotEvery  = 10
	warmUp         = 3 * time.Second
	recoveredAfter = 100 // consecutive successes that count as recovered
)

// outcome is what one command got.
type outcome struct {
	op, id       string
	n            int
	start, end   time.Time
	sum          int // the reply, if acked
	err          error
	unknown      bool // err matches entity.ErrOutcomeUnknown
	afterRestart bool // sent after the killed node was back
	ownDeadline  bool // err is the caller's ctx error: it ended before the command started
}

// side is a client of the cluster with the Tally entities
// [first, first+faultEntities/2).
type side struct {
	first   int
	nc      *nats.Conn
	log     *natslog.Log
	snaps   *natslog.SnapshotStore
	tallies *entity.Kind[Tally, TallyEvent]
}

// newSide connects to the cluster via node i and sets up a System with
// natslog on the connection, for the entities from first on.
func newSide(ctx context.Context, t *testing.T, c *natscluster.Cluster, i, first int, logger *slog.Logger) *side {
	t.Helper()
	sd := &side{first: first}
	nc, err := c.ConnectVia(i)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if sd.log, err = natslog.New(ctx, js, natslog.WithLogger(logger)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.log.Close() })
	if sd.snaps, err = natslog.NewSnapshotStore(ctx, js, natslog.WithLogger(logger)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.snaps.Close() })
	sys, err := entity.NewSystem(sd.log, entity.WithSnapshotStore(sd.snaps), entity.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	if sd.tallies, err = entity.Register(sys, tallyType(), entity.WithSnapshotEvery(snapshotEvery), entity.WithStoreTimeout(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	sd.nc = nc
	return sd
}

// TestStreamLeaderKilledUnderLoad runs natslog on a three-node cluster with
// the stream and the snapshot bucket at three replicas, kills the stream's
// leader with SIGKILL while 48 callers send commands to 1,000 entities,
// measures how long commands fail, restarts the node and checks that it
// catches up, and then checks the log against every command's outcome:
// acknowledged commands stored exactly once with the sum they replied,
// refused ones not stored, ambiguous ones at most once, every entity's Seqs
// 1..n.
func TestStreamLeaderKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	c, err := natscluster.Start(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop) // last: after the clients' cleanups
	nc, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := natslog.Setup(ctx, js, natslog.WithReplicas(3)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{natslog.DefaultStream, "KV_" + natslog.DefaultBucket} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s: Replicas = %d, want 3", name, got)
		}
	}
	stream, err := js.Stream(ctx, natslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Index(stream.CachedInfo().Cluster.Leader)
	if leader < 0 {
		t.Fatalf("stream leader %q is not a node of the cluster", stream.CachedInfo().Cluster.Leader)
	}

	// Two clients, each with a Log, a SnapshotStore and a System of its
	// own, serving half the entities: one connected to the stream's leader
	// (killing it drops the connection: requests in flight are lost, the
	// client reconnects to another node), one to a follower (requests in
	// flight go unanswered until the election is over).
	logs := &countingHandler{}
	logger := slog.New(logs)
	sides := []*side{
		newSide(ctx, t, c, leader, 0, logger),
		newSide(ctx, t, c, (leader+1)%3, faultEntities/2, logger),
	}
	// The load: faultWorkers callers, each sending Add with an op id of its
	// own to random entities until stop closes.
	var (
		mu        sync.Mutex // guards outcomes
		outcomes  []outcome
		stop      = make(chan struct{})
		restarted atomic.Bool
		wg        sync.WaitGroup
	)
	for w := range faultWorkers {
		sd := sides[w%len(sides)]
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{op: fmt.Sprintf("w%d-%d", w, i), id: fmt.Sprintf("t-%d", sd.first+rand.N(faultEntities/len(sides))), n: 1 + rand.N(9)}
				actx, acancel := context.WithTimeout(ctx, faultAskWait)
				o.afterRestart = restarted.Load()
				o.start = time.Now()
				o.sum, o.err = entity.Ask(actx, sd.tallies.Ref(o.id), Add{Op: o.op, N: o.n})
				o.end = time.Now()
				// The caller's own deadline before the command started
				// is ctx's error itself (see entity.Ask): the caller
				// knows what it asked.
				o.ownDeadline = o.err != nil && o.err == actx.Err()
				acancel()
				o.unknown = errors.Is(o.err, entity.ErrOutcomeUnknown)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if o.err != nil {
					// A failing caller does not spin.
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	time.Sleep(warmUp)
	info, err := streamInfo(ctx, js, natslog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Index(info.Cluster.Leader)
	if victim < 0 {
		t.Fatalf("stream leader %q is not a node of the cluster", info.Cluster.Leader)
	}
	mu.Lock()
	beforeKill := len(outcomes)
	mu.Unlock()
	on := make([]string, len(sides))
	for k, sd := range sides {
		on[k] = sd.nc.ConnectedServerName()
	}
	killedAt := time.Now()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed stream leader %s after %d commands; the two clients were connected to %s", c.Name(victim), beforeKill, strings.Join(on, " and "))

	// A new leader, as the stream's info reports it.
	var newLeader string
	for {
		info, err := streamInfo(ctx, js, natslog.DefaultStream)
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" && info.Cluster.Leader != c.Name(victim) {
			newLeader = info.Cluster.Leader
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no new stream leader: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	elected := time.Since(killedAt)

	// Service is back when recoveredAfter commands in a row, among those
	// sent after the kill, succeed.
	var firstOK, recovered time.Duration
	for recovered == 0 {
		if ctx.Err() != nil || time.Since(killedAt) > 30*time.Second {
			t.Fatalf("commands did not recover within 30 s of the kill")
		}
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		firstOK, recovered = recovery(outcomes, killedAt)
		mu.Unlock()
	}
	t.Logf("after the kill: new leader %s elected in %v; first command succeeded after %v; %d in a row after %v",
		newLeader, elected.Round(time.Millisecond), firstOK.Round(time.Millisecond), recoveredAfter, recovered.Round(time.Millisecond))

	// The killed node comes back on its ports and data, and catches up
	// while the load goes on.
	restartAt := time.Now()
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	for _, name := range []string{natslog.DefaultStream, "KV_" + natslog.DefaultBucket} {
		waitCurrent(ctx, t, js, name, c.Name(victim))
	}
	t.Logf("node %s restarted and current in both streams after %v", c.Name(victim), time.Since(restartAt).Round(time.Millisecond))
	time.Sleep(time.Second) // more load with all three replicas
	stopLoad()

	// Quiet now: every node's copy of each stream, the restarted one's
	// first, must equal the leader's.
	for _, name := range []string{natslog.DefaultStream, "KV_" + natslog.DefaultBucket} {
		for k := range c.Len() {
			sameAsLeader(ctx, t, c, js, name, (victim+k)%c.Len())
		}
	}

	events := checkLog(ctx, t, sides[0].log, outcomes, killedAt)
	if info, err := streamInfo(ctx, js, natslog.DefaultStream); err != nil {
		t.Error(err)
	} else if info.State.Msgs != uint64(events) {
		t.Errorf("the stream holds %d messages, the entities %d events: messages outside the entities' Seqs", info.State.Msgs, events)
	}

	// A fresh System recovers every entity from the snapshots and events
	// of the replicated stores, to the sum the log holds.
	checkRecovery(ctx, t, sides[0].log, sides[0].snaps)

	warns, errs, samples := logs.counts()
	t.Logf("natslog/entity log lines: %d warnings, %d errors; first: %s", warns, errs, strings.Join(samples, " | "))
	t.Logf("test took %v", time.Since(began).Round(time.Millisecond))
}

// recovery returns, among the outcomes of commands sent after killedAt,
// how long after it the first succeeded and the recoveredAfter-th of a run
// of successes did, in order of completion; 0 if not yet.
func recovery(all []outcome, killedAt time.Time) (firstOK, recovered time.Duration) {
	var after []outcome
	for _, o := range all {
		if o.start.After(killedAt) {
			after = append(after, o)
		}
	}
	sort.Slice(after, func(i, j int) bool { return after[i].end.Before(after[j].end) })
	run := 0
	for _, o := range after {
		if o.err != nil {
			run = 0
			continue
		}
		if firstOK == 0 {
			firstOK = o.end.Sub(killedAt)
		}
		if run++; run == recoveredAfter {
			return firstOK, o.end.Sub(killedAt)
		}
	}
	return firstOK, 0
}

// waitCurrent waits until the replica of stream on node reports current
// with no lag.
func waitCurrent(ctx context.Context, t *testing.T, js jetstream.JetStream, stream, node string) {
	t.Helper()
	var last string
	for {
		info, err := streamInfo(ctx, js, stream)
		if err == nil && info.Cluster != nil {
			last = fmt.Sprintf("leader %s", info.Cluster.Leader)
			for _, r := range info.Cluster.Replicas {
				last += fmt.Sprintf(", %s current=%t lag=%d offline=%t", r.Name, r.Current, r.Lag, r.Offline)
				if r.Name == node && r.Current && r.Lag == 0 && !r.Offline {
					return
				}
			}
		} else {
			last = fmt.Sprint(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("stream %s: replica %s not current: %s", stream, node, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamInfo asks for stream's info with a deadline of its own: a request
// that the cluster drops while a node rejoins would otherwise wait for the
// whole test's.
func streamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// sameAsLeader waits until node i's copy of stream has the leader's last
// sequence and message count, as each node itself reports them.
func sameAsLeader(ctx context.Context, t *testing.T, c *natscluster.Cluster, js jetstream.JetStream, stream string, i int) {
	t.Helper()
	var mine, leader natscluster.StreamState
	var err error
	for {
		info, serr := streamInfo(ctx, js, stream)
		if serr == nil {
			if l := c.Index(info.Cluster.Leader); l >= 0 {
				if leader, err = c.StreamState(ctx, l, stream); err == nil {
					mine, err = c.StreamState(ctx, i, stream)
				}
				if err == nil && mine.LastSeq == leader.LastSeq && mine.Msgs == leader.Msgs &&
					leader.LastSeq == info.State.LastSeq && leader.Msgs == info.State.Msgs {
					t.Logf("stream %s: node %s has last seq %d, %d messages, as leader %s", stream, mine.Node, mine.LastSeq, mine.Msgs, leader.Node)
					return
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("stream %s: node %s (%+v) did not catch up with the leader (%+v): %v %v", stream, c.Name(i), mine, leader, err, serr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stored is an op found in the log.
type stored struct {
	id    string
	count int
	sum   int // the entity's sum after the op's (first) event
}

// checkLog reads every entity back and checks it against the outcomes. It
// returns the number of events read.
func checkLog(ctx context.Context, t *testing.T, log *natslog.Log, outcomes []outcome, killedAt time.Time) int {
	t.Helper()
	ops := make(map[string]*stored)
	events := 0
	for e := range faultEntities {
		id := fmt.Sprintf("t-%d", e)
		sum := 0
		want := uint64(1)
		for rec, err := range log.ReadEntity(ctx, "Tally", id, 1) {
			if err != nil {
				t.Fatalf("read %s: %v", id, err)
			}
			if rec.Seq != want {
				t.Fatalf("entity %s: Seq %d where %d was due: a gap or a repeat", id, rec.Seq, want)
			}
			want++
			ev, err := tallyType().Events.Decode(rec.Name, rec.Revision, rec.Data)
			if err != nil {
				t.Fatalf("entity %s seq %d: %v", id, rec.Seq, err)
			}
			a := ev.(Added)
			sum += a.N
			events++
			if s := ops[a.Op]; s != nil {
				s.count++
				continue
			}
			ops[a.Op] = &stored{id: id, count: 1, sum: sum}
		}
	}
	var acked, refused, unknown, unknownStored int
	byKind := map[string]int{}
	samples := map[string]string{}
	known := make(map[string]bool, len(outcomes))
	for _, o := range outcomes {
		known[o.op] = true
		s := ops[o.op]
		switch {
		case o.err == nil:
			acked++
			switch {
			case s == nil:
				t.Errorf("acknowledged %s (%s +%d, reply %d) is not in the log", o.op, o.id, o.n, o.sum)
			case s.count != 1:
				t.Errorf("acknowledged %s is in the log %d times", o.op, s.count)
			case s.id != o.id:
				t.Errorf("acknowledged %s is in the log of %s, not %s", o.op, s.id, o.id)
			case s.sum != o.sum:
				t.Errorf("acknowledged %s replied sum %d, the log has %d at its event", o.op, o.sum, s.sum)
			}
			continue
		case o.unknown:
			unknown++
			if s != nil {
				unknownStored++
				if s.count != 1 {
					t.Errorf("ambiguous %s is in the log %d times", o.op, s.count)
				}
			}
		default:
			refused++
			if s != nil {
				t.Errorf("%s failed with %q, which does not match entity.ErrOutcomeUnknown, but is in the log %d times", o.op, o.err, s.count)
			}
		}
		k := errKind(o)
		byKind[k]++
		if _, ok := samples[k]; !ok {
			samples[k] = o.err.Error()
		}
		if !o.ownDeadline && !strings.Contains(o.err.Error(), "Tally/"+o.id) {
			t.Errorf("%s: the error does not name entity Tally/%s: %v", o.op, o.id, o.err)
		}
		if strings.HasSuffix(k, "unclear") {
			t.Errorf("%s: the error matches none of entity.ErrOutcomeUnknown's causes the test knows (eventlog.ErrUnavailable, eventlog.ErrConflict, a deadline): %v", o.op, o.err)
		}
	}
	for op, s := range ops {
		if !known[op] {
			t.Errorf("the log of %s has op %s, which no caller sent", s.id, op)
		}
	}
	t.Logf("%d commands: %d acknowledged, %d failed with an unknown outcome (%d of them stored), %d failed and not stored; %d events in %d entities",
		len(outcomes), acked, unknown, unknownStored, refused, events, faultEntities)
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("  %d× %s, e.g. %s", byKind[k], k, samples[k])
	}
	// Each entity has one writer, so a conflict means that the entity
	// recovered from a replica that had not yet stored the events of an
	// earlier append whose outcome was unknown: direct gets are answered by
	// followers too (see natslog's doc, Reads). The append is refused, not
	// stored twice, and the entity recovers again.
	sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].start.Before(outcomes[j].start) })
	ambiguousBefore := map[string]bool{}
	var slowest time.Duration
	for _, o := range outcomes {
		slowest = max(slowest, o.end.Sub(o.start))
		if o.err != nil && !o.start.After(killedAt.Add(-faultAskWait)) {
			t.Errorf("%s failed before the kill: %v", o.op, o.err)
		}
		conflict := errors.Is(o.err, eventlog.ErrConflict)
		if conflict && !ambiguousBefore[o.id] {
			t.Errorf("%s: a conflict on %s, whose only writer had no command of unknown outcome before: %v", o.op, o.id, o.err)
		}
		if o.err != nil && o.afterRestart && !conflict {
			t.Errorf("%s failed after the killed node came back: %v", o.op, o.err)
		}
		if o.unknown {
			ambiguousBefore[o.id] = true
		}
	}
	// Ask returns by its ctx's deadline, plus a little slack on two
	// loaded cores with the race detector.
	t.Logf("slowest command took %v (ctx %v)", slowest.Round(time.Millisecond), faultAskWait)
	if slowest > faultAskWait+2*time.Second {
		t.Errorf("a command took %v with a ctx of %v", slowest, faultAskWait)
	}
	if acked == 0 {
		t.Error("no command succeeded")
	}
	if got := len(outcomes); got < 1000 {
		t.Errorf("only %d commands ran", got)
	}
	return events
}

// errKind classifies a failed command: whether its outcome is unknown, and
// which store condition it matches. An error matching none is "unclear".
func errKind(o outcome) string {
	prefix := "definite"
	if o.unknown {
		prefix = "unknown"
	}
	switch {
	case errors.Is(o.err, eventlog.ErrConflict):
		return prefix + " conflict"
	case errors.Is(o.err, eventlog.ErrUnavailable):
		return prefix + " unavailable"
	case o.ownDeadline:
		return prefix + " caller's deadline before the command started"
	case errors.Is(o.err, context.DeadlineExceeded):
		return prefix + " deadline"
	}
	return prefix + " unclear"
}

// checkRecovery recovers every entity in a new System and compares its sum
// with the log's.
func checkRecovery(ctx context.Context, t *testing.T, log eventlog.Log, snaps *natslog.SnapshotStore) {
	t.Helper()
	sys, err := entity.NewSystem(log, entity.WithSnapshotStore(snaps))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	tallies, err := entity.Register(sys, tallyType(), entity.WithSnapshotEvery(snapshotEvery))
	if err != nil {
		t.Fatal(err)
	}
	withSnapshot := 0
	for e := range faultEntities {
		id := fmt.Sprintf("t-%d", e)
		want := 0
		for rec, err := range log.ReadEntity(ctx, "Tally", id, 1) {
			if err != nil {
				t.Fatal(err)
			}
			ev, _ := tallyType().Events.Decode(rec.Name, rec.Revision, rec.Data)
			want += ev.(Added).N
		}
		got, err := entity.Ask(ctx, tallies.Ref(id), Get{})
		if err != nil {
			t.Fatalf("recover %s: %v", id, err)
		}
		if got != want {
			t.Errorf("%s recovered to sum %d, the log says %d", id, got, want)
		}
		if snap, ok, err := snaps.Load(ctx, "Tally", id); err != nil {
			t.Fatalf("load snapshot of %s: %v", id, err)
		} else if ok && snap.Seq > 0 {
			withSnapshot++
		}
	}
	t.Logf("a new System recovered all %d entities to the log's sums; %d have snapshots", faultEntities, withSnapshot)
	if withSnapshot == 0 {
		t.Error("no entity has a snapshot: the R3 bucket was not exercised")
	}
}

// countingHandler is a slog.Handler that counts warnings and errors and
// keeps the first few.
type countingHandler struct {
	mu      sync.Mutex // guards the fields below
	warns   int
	errs    int
	samples []string
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelError {
		h.errs++
	} else {
		h.warns++
	}
	if len(h.samples) < 3 {
		var b strings.Builder
		b.WriteString(r.Level.String() + " " + r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		h.samples = append(h.samples, b.String())
	}
	return nil
}

func (h *countingHandler) counts() (warns, errs int, samples []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.warns, h.errs, append([]string(nil), h.samples...)
}

package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// forEachPath runs test once for each way of committing a round.
func forEachPath(t *testing.T, test func(t *testing.T, path postgreslog.Option)) {
	for _, p := range postgreslog.CommitPaths {
		t.Run(p.Name, func(t *testing.T) { test(t, p.Opt) })
	}
}

// testCtx returns a context bounded by d and by the test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func events(prefix string, n int) []eventlog.Event {
	out := make([]eventlog.Event, n)
	for i := range out {
		out[i] = eventlog.Event{Name: fmt.Sprintf("%s-%d", prefix, i+1), Data: []byte(prefix)}
	}
	return out
}

func mustAppend(t *testing.T, ctx context.Context, l eventlog.Log, typ, id string, expected uint64, evs ...eventlog.Event) uint64 {
	t.Helper()
	pos, err := l.Append(ctx, typ, id, expected, evs...)
	if err != nil {
		t.Fatalf("Append(%s/%s, expected %d): %v", typ, id, expected, err)
	}
	return pos
}

func readAll(t *testing.T, ctx context.Context, l eventlog.Log, typ, id string) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for r, err := range l.ReadEntity(ctx, typ, id, 1) {
		if err != nil {
			t.Fatalf("ReadEntity(%s/%s): %v", typ, id, err)
		}
		out = append(out, r)
	}
	return out
}

// TestGroupCommitConflictsStayWithTheirEntity queues 300 appends behind a
// transaction holding the Position lock, so they commit as one batch, and
// checks that the conflicting ones (stale, ahead, and a lost race on one
// entity) fail alone, with the right Actual, and store none of their
// events, while every other append of the batch commits.
func TestGroupCommitConflictsStayWithTheirEntity(t *testing.T) {
	forEachPath(t, testGroupCommitConflictsStayWithTheirEntity)
}

func testGroupCommitConflictsStayWithTheirEntity(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithConcurrency(1), path)
	ctx := testCtx(t, 60*time.Second)
	const typ, entities = "account", 300
	id := func(e int) string { return fmt.Sprintf("acc-%03d", e) }
	for e := range entities {
		mustAppend(t, ctx, l, typ, id(e), 0, events("open", 2)...)
	}
	mustAppend(t, ctx, l, typ, "first", 0, events("first", 1)...)

	// The first append takes the only worker and waits for the lock; the
	// rest queue up.
	release := postgreslog.HoldPositions(t, pool, l)
	before := l.Stats()
	firstDone := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, typ, "first", 1, events("first", 1)...)
		firstDone <- err
	}()
	waitFor(t, 10*time.Second, "the first batch to start", func() bool { return postgreslog.QueueLen(l) == 0 })
	time.Sleep(50 * time.Millisecond)

	type outcome struct {
		pos uint64
		err error
	}
	results := make([]outcome, entities)
	var race [2]outcome
	var wg sync.WaitGroup
	for e := range entities {
		wg.Go(func() {
			var expected uint64 = 2 // right
			switch e % 5 {
			case 0:
				expected = 1 // stale
			case 1:
				expected = 7 // ahead
			}
			pos, err := l.Append(ctx, typ, id(e), expected, events("deposit", 3)...)
			results[e] = outcome{pos, err}
		})
	}
	// Two appends to one entity in the same batch: exactly one wins.
	for i := range race {
		wg.Go(func() {
			pos, err := l.Append(ctx, typ, "raced", 0, events(fmt.Sprintf("racer%d", i), 2)...)
			race[i] = outcome{pos, err}
		})
	}
	waitFor(t, 20*time.Second, "all appends to queue", func() bool { return postgreslog.QueueLen(l) == entities+len(race) })
	release()
	wg.Wait()
	if err := <-firstDone; err != nil {
		t.Fatalf("first append: %v", err)
	}

	// Stats counts a batch before its appends are answered, so before
	// includes every setup batch: exactly the first, then all queued ones
	// together.
	if got := l.Stats().Batches - before.Batches; got != 2 {
		t.Errorf("the appends committed in %d transactions, want 2 (the first, then all queued ones together)", got)
	}
	positions := make(map[uint64]bool)
	for e, r := range results {
		switch e % 5 {
		case 0, 1:
			expected := uint64(1)
			if e%5 == 1 {
				expected = 7
			}
			var ce *eventlog.ConflictError
			if !errors.As(r.err, &ce) || !errors.Is(r.err, eventlog.ErrConflict) {
				t.Errorf("%s expected %d: got %v, want a *eventlog.ConflictError", id(e), expected, r.err)
				continue
			}
			if ce.EntityType != typ || ce.EntityID != id(e) || ce.Expected != expected || ce.Actual != 2 {
				t.Errorf("%s: got %+v, want Expected %d Actual 2", id(e), *ce, expected)
			}
		default:
			if r.err != nil {
				t.Errorf("%s: a conflict elsewhere in the batch failed a good append: %v", id(e), r.err)
				continue
			}
			if positions[r.pos] {
				t.Errorf("%s: Position %d returned twice", id(e), r.pos)
			}
			positions[r.pos] = true
		}
	}
	for e := range entities {
		recs := readAll(t, ctx, l, typ, id(e))
		want := 5
		if e%5 < 2 {
			want = 2 // a refused 3-event append stores none of them
		}
		if len(recs) != want {
			t.Errorf("%s holds %d events, want %d", id(e), len(recs), want)
			continue
		}
		for i, r := range recs {
			if r.Seq != uint64(i+1) {
				t.Errorf("%s: event %d has Seq %d", id(e), i, r.Seq)
			}
		}
		if e%5 >= 2 {
			if last := recs[4]; last.Position != results[e].pos {
				t.Errorf("%s: Append returned Position %d, its last event has %d", id(e), results[e].pos, last.Position)
			}
			if recs[2].Position+1 != recs[3].Position || recs[3].Position+1 != recs[4].Position {
				t.Errorf("%s: the events of one append got Positions %d %d %d, want consecutive", id(e), recs[2].Position, recs[3].Position, recs[4].Position)
			}
		}
	}
	winners := 0
	for i, r := range race {
		var ce *eventlog.ConflictError
		switch {
		case r.err == nil:
			winners++
		case errors.As(r.err, &ce):
			if ce.Expected != 0 || ce.Actual != 2 {
				t.Errorf("racer %d: got %+v, want Expected 0 Actual 2", i, *ce)
			}
		default:
			t.Errorf("racer %d: %v", i, r.err)
		}
	}
	if winners != 1 {
		t.Errorf("%d racers for one new stream won, want 1", winners)
	}
	if recs := readAll(t, ctx, l, typ, "raced"); len(recs) != 2 || recs[0].Name[:6] != recs[1].Name[:6] {
		t.Errorf("the raced stream holds %d events %v, want the winner's 2", len(recs), recs)
	}
}

// TestForeignRowsConflict writes an event row behind the log's back: an
// append at its Seq gets a ConflictError with the Actual the table shows,
// and the other appends of its batch commit.
func TestForeignRowsConflict(t *testing.T) { forEachPath(t, testForeignRowsConflict) }

func testForeignRowsConflict(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithConcurrency(1), path)
	ctx := testCtx(t, 60*time.Second)
	const typ = "doc"
	if _, err := pool.Exec(ctx, "INSERT INTO "+postgreslog.EventsTable(l)+
		" (entity_type, entity_id, seq, position, name, revision, data) VALUES ($1, 'sneaky', 1, 1000000, 'Smuggled', 0, '')", typ); err != nil {
		t.Fatal(err)
	}
	errs, sneakyErr := appendBatchWith(t, ctx, pool, l, typ, func() error {
		_, err := l.Append(ctx, typ, "sneaky", 0, events("e", 1)...)
		return err
	}, nil)
	var ce *eventlog.ConflictError
	if !errors.As(sneakyErr, &ce) || ce.Expected != 0 || ce.Actual != 1 {
		t.Fatalf("append over the smuggled event: got %v, want a ConflictError with Expected 0 and Actual 1", sneakyErr)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("ok-%d failed with its batch: %v", i, err)
		}
	}
	if got, err := l.LastSeq(ctx, typ, "sneaky"); err != nil || got != 1 {
		t.Errorf("LastSeq: %d, %v; want 1", got, err)
	}
	mustAppend(t, ctx, l, typ, "sneaky", 1, events("after", 1)...)
	if recs := readAll(t, ctx, l, typ, "sneaky"); len(recs) != 2 || recs[0].Name != "Smuggled" || recs[1].Name != "after-1" {
		t.Errorf("sneaky holds %v", recs)
	}
}

// TestUniqueKeyIsTheLastLineOfDefense has a writer around the log insert a
// row in a transaction that commits only while the log's batch is already
// inserting at that Seq, so the batch's check cannot see it: the unique key
// refuses the batch's row (SQLSTATE 23505). The append at that Seq gets a
// ConflictError with Actual 1, and every other append of the batch commits.
func TestUniqueKeyIsTheLastLineOfDefense(t *testing.T) {
	forEachPath(t, testUniqueKeyIsTheLastLineOfDefense)
}

func testUniqueKeyIsTheLastLineOfDefense(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithConcurrency(1), path)
	ctx := testCtx(t, 60*time.Second)
	const typ = "doc"
	foreign, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Rollback(ctx)
	if _, err := foreign.Exec(ctx, "INSERT INTO "+postgreslog.EventsTable(l)+
		" (entity_type, entity_id, seq, position, name, revision, data) VALUES ($1, 'raced', 1, 1000000, 'Foreign', 0, '')", typ); err != nil {
		t.Fatal(err)
	}
	errs, racedErr := appendBatchWith(t, ctx, pool, l, typ, func() error {
		_, err := l.Append(ctx, typ, "raced", 0, events("e", 1)...)
		return err
	}, func() {
		// The batch now waits for the foreign transaction on the unique
		// key; committing it makes the batch's insert fail.
		time.Sleep(300 * time.Millisecond)
		if err := foreign.Commit(ctx); err != nil {
			t.Errorf("commit the foreign row: %v", err)
		}
	})
	var ce *eventlog.ConflictError
	if !errors.As(racedErr, &ce) || ce.Expected != 0 || ce.Actual != 1 {
		t.Fatalf("append racing the foreign row: got %v, want a ConflictError with Expected 0 and Actual 1", racedErr)
	}
	if got := l.Stats().Retries; got != 1 {
		t.Errorf("Stats().Retries = %d, want 1: the unique key should have refused the batch once", got)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("ok-%d failed with its batch: %v", i, err)
		}
	}
	if recs := readAll(t, ctx, l, typ, "raced"); len(recs) != 1 || recs[0].Name != "Foreign" {
		t.Errorf("raced holds %v, want only the foreign event", recs)
	}
}

// appendBatchWith makes one batch of ten good appends and the append
// special, by holding the Position lock while they queue; after releasing
// it, it calls during (if not nil) while the batch runs. It returns the
// errors of the good appends and of special.
func appendBatchWith(t *testing.T, ctx context.Context, pool *pgxpool.Pool, l *postgreslog.Log, typ string, special func() error, during func()) ([]error, error) {
	t.Helper()
	mustAppend(t, ctx, l, typ, "first", 0, events("e", 1)...)
	release := postgreslog.HoldPositions(t, pool, l)
	firstDone := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, typ, "first", 1, events("e", 1)...)
		firstDone <- err
	}()
	waitFor(t, 10*time.Second, "the first batch to start", func() bool { return postgreslog.QueueLen(l) == 0 })
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	var specialErr error
	for i := range errs {
		wg.Go(func() { _, errs[i] = l.Append(ctx, typ, fmt.Sprintf("ok-%d", i), 0, events("e", 2)...) })
	}
	wg.Go(func() { specialErr = special() })
	waitFor(t, 10*time.Second, "the appends to queue", func() bool { return postgreslog.QueueLen(l) == len(errs)+1 })
	release()
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during()
	}
	wg.Wait()
	return errs, specialErr
}

// TestGuardedFirstWriteAcrossLogs races creators on several Logs, as
// separate processes would: for each new stream exactly one wins and the
// others get a ConflictError with Actual 1.
func TestGuardedFirstWriteAcrossLogs(t *testing.T) { forEachPath(t, testGuardedFirstWriteAcrossLogs) }

func testGuardedFirstWriteAcrossLogs(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	logs := newLogs(t, pool, 4, path)
	first := logs[0]
	ctx := testCtx(t, 60*time.Second)
	const streams = 40
	var wg sync.WaitGroup
	errs := make([][]error, streams)
	start := make(chan struct{})
	for s := range streams {
		errs[s] = make([]error, len(logs))
		for i, l := range logs {
			wg.Go(func() {
				<-start
				_, errs[s][i] = l.Append(ctx, "user", fmt.Sprintf("u%d", s), 0, eventlog.Event{Name: fmt.Sprintf("created-by-%d", i)})
			})
		}
	}
	close(start)
	wg.Wait()
	for s := range streams {
		winner := -1
		for i, err := range errs[s] {
			var ce *eventlog.ConflictError
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("u%d: logs %d and %d both created the stream", s, winner, i)
				}
				winner = i
			case errors.As(err, &ce):
				if ce.Actual != 1 {
					t.Errorf("u%d log %d: conflict with Actual %d, want 1", s, i, ce.Actual)
				}
			default:
				t.Errorf("u%d log %d: %v", s, i, err)
			}
		}
		recs := readAll(t, ctx, first, "user", fmt.Sprintf("u%d", s))
		if winner < 0 || len(recs) != 1 || recs[0].Name != fmt.Sprintf("created-by-%d", winner) {
			t.Errorf("u%d: winner %d, stream holds %v", s, winner, recs)
		}
	}
}

// newLogs returns n Logs on the same fresh tables, as n processes would
// use them, each with opts.
func newLogs(t *testing.T, pool *pgxpool.Pool, n int, opts ...postgreslog.Option) []*postgreslog.Log {
	t.Helper()
	schema := postgreslog.FreshSchema(t, pool)
	setupSchema(t, pool, schema)
	logs := make([]*postgreslog.Log, n)
	for i := range logs {
		logs[i] = postgreslog.OpenTestLog(t, pool, append([]postgreslog.Option{postgreslog.WithSchema(schema)}, opts...)...)
	}
	return logs
}

// TestAppendContextEndsWhileInFlight checks that an append whose ctx ends
// while its transaction waits returns ctx's error at once, and that the
// batch still commits afterwards (the outcome is unknown to the caller, not
// lost).
func TestAppendContextEndsWhileInFlight(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithConcurrency(1))
	ctx := testCtx(t, 60*time.Second)
	release := postgreslog.HoldPositions(t, pool, l)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.Append(short, "job", "j1", 0, events("e", 1)...)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want an error matching context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Append returned %v after its deadline", d)
	}
	release()
	waitFor(t, 10*time.Second, "the abandoned append to commit", func() bool {
		seq, err := l.LastSeq(ctx, "job", "j1")
		return err == nil && seq == 1
	})
}

// TestCloseFinishesInFlightAndFailsQueued checks Close: the transaction in flight
// finishes and its append succeeds, queued appends fail with ErrClosed, and
// everything after Close fails with ErrClosed.
func TestCloseFinishesInFlightAndFailsQueued(t *testing.T) {
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithConcurrency(1))
	ctx := testCtx(t, 60*time.Second)
	mustAppend(t, ctx, l, "job", "sub", 0, events("e", 1)...)
	sub := make(chan error, 1)
	go func() {
		for _, err := range l.Subscribe(ctx, "job", 0) {
			if err != nil {
				sub <- err
				return
			}
		}
		sub <- nil
	}()

	release := postgreslog.HoldPositions(t, pool, l)
	inFlight := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, "job", "a", 0, events("e", 1)...)
		inFlight <- err
	}()
	waitFor(t, 10*time.Second, "the first batch to start", func() bool { return postgreslog.QueueLen(l) == 0 })
	time.Sleep(50 * time.Millisecond)
	queued := make(chan error, 5)
	for i := range 5 {
		go func() {
			_, err := l.Append(ctx, "job", fmt.Sprintf("q%d", i), 0, events("e", 1)...)
			queued <- err
		}()
	}
	waitFor(t, 10*time.Second, "appends to queue", func() bool { return postgreslog.QueueLen(l) == 5 })
	time.AfterFunc(200*time.Millisecond, release)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-inFlight; err != nil {
		t.Errorf("the append in flight at Close: %v, want success", err)
	}
	for range 5 {
		if err := <-queued; !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("an append queued at Close: %v, want ErrClosed", err)
		}
	}
	select {
	case err := <-sub:
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("subscription ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("subscription still running 5s after Close")
	}
	if _, err := l.Append(ctx, "job", "late", 0, events("e", 1)...); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := l.LastSeq(ctx, "job", "a"); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("LastSeq after Close: %v, want ErrClosed", err)
	}
	for _, err := range l.ReadType(ctx, "job", 0) {
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("ReadType after Close: %v, want ErrClosed", err)
		}
		break
	}
	if err := l.Close(); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

// TestStaleKnowledgeAcrossLogs has two Logs, as two processes, write one
// stream. Each Log remembers the last Seq it saw and then skips looking it
// up; when the other Log has moved the stream on, the unique key or the
// deletion record must still refuse the append, with the right Actual.
func TestStaleKnowledgeAcrossLogs(t *testing.T) { forEachPath(t, testStaleKnowledgeAcrossLogs) }

func testStaleKnowledgeAcrossLogs(t *testing.T, path postgreslog.Option) {
	pool := postgreslog.NewTestPool(t, nil)
	logs := newLogs(t, pool, 2, path)
	a, b := logs[0], logs[1]
	ctx := testCtx(t, 30*time.Second)
	const typ = "shared"

	// a knows Seq 2; b appends Seq 3: a's append at 2 hits the unique key.
	mustAppend(t, ctx, a, typ, "s", 0, events("a", 2)...)
	mustAppend(t, ctx, b, typ, "s", 2, events("b", 1)...)
	retries := a.Stats().Retries
	_, err := a.Append(ctx, typ, "s", 2, events("a", 1)...)
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || ce.Expected != 2 || ce.Actual != 3 {
		t.Fatalf("stale append: got %v, want a ConflictError with Expected 2 and Actual 3", err)
	}
	if got := a.Stats().Retries - retries; got != 1 {
		t.Errorf("the stale append ran %d more times, want 1 (refused by the unique key, then checked in full)", got)
	}
	// Now a knows Seq 3 from the conflict.
	mustAppend(t, ctx, a, typ, "s", 3, events("a", 1)...)

	// b appends Seq 5 and deletes everything: a still believes Seq 4 is
	// the last, and only the deletion record can tell it otherwise.
	mustAppend(t, ctx, b, typ, "s", 4, events("b", 1)...)
	if err := b.DeleteTo(ctx, typ, "s", 100); err != nil {
		t.Fatal(err)
	}
	_, err = a.Append(ctx, typ, "s", 4, events("a", 1)...)
	if !errors.As(err, &ce) || ce.Expected != 4 || ce.Actual != 5 {
		t.Fatalf("append over deleted events: got %v, want a ConflictError with Expected 4 and Actual 5", err)
	}
	mustAppend(t, ctx, a, typ, "s", 5, events("a", 1)...)
	recs := readAll(t, ctx, b, typ, "s")
	if len(recs) != 1 || recs[0].Seq != 6 {
		t.Errorf("stream holds %v, want only Seq 6", recs)
	}
}

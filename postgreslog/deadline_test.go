package postgreslog_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/faultproxy"
	"github.com/eventsourced-go/eventsourced/internal/faulttest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/pgprojection"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// slack is how late after its ctx's deadline a call may return in these
// tests: the time to notice the deadline and hand the error back, on a
// loaded 2-core machine under the race detector.
const slack = 500 * time.Millisecond

// Against a peer that accepts connections and never answers (here a proxy
// to the test server that forwards nothing), every call returns by its
// ctx's deadline, Setup included, with an error matching the ctx's. The
// pool has no connect timeout: only the ctx bounds the calls.
func TestSilentPeerCallsReturnByDeadline(t *testing.T) {
	dsn := postgreslog.RequireDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	p.Stall()
	u.Host = p.Addr()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.ConnectTimeout = 0
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	l, err := postgreslog.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s, err := postgreslog.NewSnapshotStore(pool)
	if err != nil {
		t.Fatal(err)
	}
	offsets, err := pgprojection.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	proj, err := projection.New(l, "T", "silent", offsets, projection.PerEvent(func(context.Context, eventlog.Record) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the proxy closes first, which ends the
	// connects the pool still waits for, and with them the transaction the
	// Log's worker has in flight, so that the Log and the pool can close.
	t.Cleanup(func() { _ = p.Close() })
	calls := map[string]func(ctx context.Context) error{
		"Setup":         func(ctx context.Context) error { return postgreslog.Setup(ctx, pool) },
		"SchemaVersion": func(ctx context.Context) error { _, err := l.SchemaVersion(ctx); return err },
		"Append": func(ctx context.Context) error {
			_, err := l.Append(ctx, "T", "a", 0, eventlog.Event{Name: "E"})
			return err
		},
		"ReadEntity": func(ctx context.Context) error {
			for _, err := range l.ReadEntity(ctx, "T", "a", 1) {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"ReadType": func(ctx context.Context) error {
			for _, err := range l.ReadType(ctx, "T", 0) {
				if err != nil {
					return err
				}
			}
			return nil
		},
		"LastSeq": func(ctx context.Context) error { _, err := l.LastSeq(ctx, "T", "a"); return err },
		"DeleteStream": func(ctx context.Context) error {
			_, err := l.DeleteStream(ctx, "T", "a", false)
			return err
		},
		"Store.Load": func(ctx context.Context) error {
			_, _, err := s.Load(ctx, "T", "a")
			return err
		},
		"Store.Save": func(ctx context.Context) error {
			return s.Save(ctx, snapshotstore.Snapshot{EntityType: "T", EntityID: "a", Seq: 1, Data: []byte("x")}, 1)
		},
		"pgprojection Migrate": offsets.Migrate,
		"projection Run": func(ctx context.Context) error {
			if err := proj.Run(ctx); err != nil {
				return err
			}
			return ctx.Err() // Run ends with nil when its ctx ends
		},
	}
	faulttest.CallsReturnByDeadline(t, "against a silent peer", time.Second, slack, calls)
}

// ledgerSystem returns the ledger kind on a System over l, closed when the
// test ends.
func ledgerSystem(t *testing.T, l *postgreslog.Log, opts ...entity.KindOption) *entity.Kind[faulttest.Ledger, faulttest.LedgerEvent] {
	t.Helper()
	sys, err := entity.NewSystem(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close() })
	k, err := entity.Register(sys, faulttest.Def(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// With the events table locked by another session for 4 s, no Ask returns
// later than its deadline (1.5 s) plus the slack, although the store
// timeout is 30 s: not one whose entity is live, nor one whose entity must
// recover (most of the 1,000 entities have not been activated when the lock
// is taken), nor one queued behind them. Once the lock is gone, every
// acknowledged command is stored exactly once.
func TestLockedTableAsksReturnByDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("locks a table under load")
	}
	pool := postgreslog.NewTestPool(t, nil)
	l := postgreslog.NewTestLog(t, pool)
	k := ledgerSystem(t, l, entity.WithStoreTimeout(30*time.Second))
	run := faulttest.Load{Kind: k, Entities: 1000, Callers: 64, Deadline: 1500 * time.Millisecond, Pause: 20 * time.Millisecond, Slack: slack}.Start()
	if !run.WaitAcked(200, 30*time.Second) {
		run.Stop()
		t.Fatalf("only %d commands acknowledged before the lock", run.Acked())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lockConn, err := pgx.Connect(ctx, postgreslog.RequireDSN(t))
	if err != nil {
		run.Stop()
		t.Fatal(err)
	}
	defer lockConn.Close(context.Background())
	tx, err := lockConn.Begin(ctx)
	if err != nil {
		run.Stop()
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+postgreslog.EventsTable(l)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		run.Stop()
		t.Fatal(err)
	}
	locked := run.Now()
	time.Sleep(4 * time.Second)
	if err := tx.Rollback(ctx); err != nil {
		run.Stop()
		t.Fatal(err)
	}
	unlocked := run.Now()
	time.Sleep(3 * time.Second)
	run.Stop()
	faulttest.CheckLate(t, run)
	during := run.Failures(locked, unlocked)
	if len(during) == 0 {
		t.Errorf("no command failed while the table was locked")
	}
	faulttest.CheckFailures(t, "locked", during, context.DeadlineExceeded)
	first, ok := run.FirstSuccessAfter(unlocked)
	if !ok {
		t.Fatalf("no command succeeded after the lock was released")
	}
	t.Logf("%d acknowledged; %d failed while the table was locked; first success %v after the lock was released",
		run.Acked(), len(during), first.Round(time.Millisecond))
	faulttest.Verify(t, l, run.AckedCommands())
}

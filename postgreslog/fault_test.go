package postgreslog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/internal/faulttest"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// TestFaultServerCrash runs 1,000 entities under load (128 callers) through
// the entity runtime, crashes the server (pg_ctl stop -m immediate; a
// private cluster, see StartPrivateServer), keeps the load on during the
// outage, starts the server again and carries on, all in one process. The
// callers' deadlines and the store timeout are 30 s, so only failing the
// statements on broken connections at once brings the commands back
// quickly. It checks that commands succeed again within 2 s of the server
// accepting connections; that commands during the outage failed with
// errors matching ErrUnavailable; that every command that got a reply has
// its event stored exactly once, no command's event twice, every stream's
// Seqs contiguous; and that every entity takes commands again.
func TestFaultServerCrash(t *testing.T) {
	sc := postgreslog.StartPrivateServer(t)
	pool := postgreslog.NewTestPool(t, func(c *pgxpool.Config) {
		cc, err := pgx.ParseConfig(sc.DSN)
		if err != nil {
			t.Fatal(err)
		}
		c.ConnConfig = cc
		c.ConnConfig.ConnectTimeout = 2 * time.Second
	})
	l := postgreslog.NewTestLog(t, pool)
	k := ledgerSystem(t, l, entity.WithStoreTimeout(30*time.Second))
	// Whatever happens, the server is running when the test ends.
	serverDown := false
	t.Cleanup(func() {
		if serverDown {
			sc.Start(t)
		}
	})

	const entities = 1000
	run := faulttest.Load{Kind: k, Entities: entities, Callers: 128, Deadline: 30 * time.Second, Pause: 20 * time.Millisecond}.Start()
	if !run.WaitAcked(3000, 60*time.Second) {
		run.Stop()
		t.Fatalf("only %d commands acknowledged before the crash", run.Acked())
	}
	time.Sleep(time.Second) // the rate before the outage is measured over this second
	crashed := run.Now()
	beforeCrash := run.Acked()
	serverDown = true
	sc.Stop(t)
	time.Sleep(1500 * time.Millisecond)
	sc.Start(t)
	serverDown = false
	up := run.Now()
	time.Sleep(4 * time.Second)
	run.Stop()
	t.Logf("server down for %v; %d acknowledged before the crash, %d in all",
		(up - crashed).Round(time.Millisecond), beforeCrash, run.Acked())

	if f := run.Failures(0, crashed); len(f) > 0 {
		t.Errorf("%d commands failed before the crash, such as %v", len(f), f[0].Err)
	}
	outage := run.Failures(crashed, up)
	if len(outage) == 0 {
		t.Errorf("no command failed while the server was down")
	}
	// Failures say what failed: the entity's persist or recovery, because
	// the database was unavailable.
	faulttest.CheckFailures(t, "outage", outage, postgreslog.ErrUnavailable)
	faulttest.CheckFailures(t, "after the restart", run.Failures(up, run.Now()), postgreslog.ErrUnavailable)
	for _, f := range append(outage, run.Failures(up, run.Now())...) {
		if !errors.Is(f.Err, entity.ErrPersist) && !errors.Is(f.Err, entity.ErrRecovery) {
			t.Errorf("got %v, want an entity persist or recovery error", f.Err)
			break
		}
	}
	faulttest.CheckBackQuickly(t, run, crashed, up, 2*time.Second)

	// Every entity works again, in this process.
	acked := run.AckedCommands()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for e := range entities {
		id := fmt.Sprintf("e%05d", e)
		cmd := "final-" + id
		if _, err := entity.Ask(ctx, k.Ref(id), faulttest.Record{Cmd: cmd}); err != nil {
			t.Errorf("%s after the restart: %v", id, err)
			continue
		}
		acked[cmd] = id
	}
	stored := faulttest.Verify(t, l, acked)
	t.Logf("%d events stored for %d acknowledged commands (%d more landed without a reply)", stored, len(acked), stored-len(acked))
}

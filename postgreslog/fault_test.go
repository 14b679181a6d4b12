package postgreslog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/postgreslog"
)

// ledger is the entity of the fault test: every command records its unique
// id as one event, so the table shows which commands landed and how often.
type ledger struct{ N int }

type ledgerEvent interface{ isLedgerEvent() }

type recorded struct {
	Cmd string `json:"cmd"`
}

func (recorded) isLedgerEvent() {}

type record struct{ cmd string }

func (c record) Handle(tx *entity.Tx[ledger, ledgerEvent]) (int, error) {
	return tx.Persist(recorded{Cmd: c.cmd}).N, nil
}

const ledgerType = "FaultLedger"

func ledgerDef() entity.Type[ledger, ledgerEvent] {
	events := binarize.NewRegistry[ledgerEvent](binarize.JSON)
	binarize.MustRegister[recorded](events, "Recorded")
	return entity.Type[ledger, ledgerEvent]{
		Name:   ledgerType,
		Apply:  func(s ledger, _ ledgerEvent) ledger { s.N++; return s },
		Events: events,
	}
}

// TestFaultServerCrash runs 1,000 entities under load through the entity
// runtime, crashes the server (pg_ctl stop -m immediate; a private cluster,
// see StartPrivateServer), keeps the load on
// during the outage, starts the server again and carries on, all in one
// process. Then it checks that every command that got a reply has its event
// in the table exactly once, that no command's event is there twice, that
// every stream's Seqs are contiguous, that commands during the outage failed
// with errors from this package, and that every entity takes commands again.
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
	l := postgreslog.NewTestLog(t, pool, postgreslog.WithWriteTimeout(3*time.Second))
	sys, err := entity.NewSystem(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close() })
	kind, err := entity.Register(sys, ledgerDef(), entity.WithStoreTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Whatever happens, the server is running when the test ends.
	serverDown := false
	t.Cleanup(func() {
		if serverDown {
			sc.Start(t)
		}
	})

	const entities, workers = 1000, 48
	const (
		phaseBefore = iota
		phaseOutage
		phaseAfter
	)
	var phase atomic.Int32
	var mu sync.Mutex                // guards acked and failures
	acked := make(map[string]string) // command id -> entity id
	failures := make(map[int32][]error)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("e%04d", (w*131+k*workers)%entities)
				cmd := fmt.Sprintf("w%d-%d", w, k)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				_, err := entity.Ask(ctx, kind.Ref(id), record{cmd})
				cancel()
				// A failure counts in the phase it ended in.
				p := phase.Load()
				mu.Lock()
				if err == nil {
					acked[cmd] = id
				} else {
					failures[p] = append(failures[p], err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}

	time.Sleep(1500 * time.Millisecond)
	beforeCrash := ackedNow()
	phase.Store(phaseOutage)
	serverDown = true
	sc.Stop(t)
	crashed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	sc.Start(t)
	serverDown = false
	phase.Store(phaseAfter)
	t.Logf("server down for %v", time.Since(crashed).Round(time.Millisecond))
	afterRestart := ackedNow()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	t.Logf("acked: %d before the crash, %d during the outage, %d after the restart; failed: %d before, %d during, %d after",
		beforeCrash, afterRestart-beforeCrash, len(acked)-afterRestart,
		len(failures[phaseBefore]), len(failures[phaseOutage]), len(failures[phaseAfter]))
	mu.Unlock()
	if beforeCrash < entities {
		t.Errorf("only %d commands succeeded before the crash; the load is too light to mean anything", beforeCrash)
	}
	if len(acked)-afterRestart == 0 {
		t.Errorf("no command succeeded after the restart")
	}
	if len(failures[phaseBefore]) > 0 {
		t.Errorf("%d commands failed before the crash, such as %v", len(failures[phaseBefore]), failures[phaseBefore][0])
	}
	if len(failures[phaseOutage]) == 0 {
		t.Errorf("no command failed while the server was down")
	}
	// Failures say what failed: the entity's persist or recovery, because
	// the database was unavailable.
	samples := make(map[string]bool)
	for _, p := range []int32{phaseOutage, phaseAfter} {
		for _, err := range failures[p] {
			if !(errors.Is(err, entity.ErrPersist) || errors.Is(err, entity.ErrRecovery)) || !errors.Is(err, postgreslog.ErrUnavailable) {
				t.Errorf("phase %d: got %v, want an entity persist or recovery error matching postgreslog.ErrUnavailable", p, err)
				continue
			}
			if len(samples) < 4 {
				samples[err.Error()] = true
			}
		}
	}
	for s := range samples {
		t.Logf("failure: %s", s)
	}

	// Every entity works again, in this process.
	ctx := testCtx(t, 60*time.Second)
	for e := range entities {
		id := fmt.Sprintf("e%04d", e)
		cmd := "final-" + id
		if _, err := entity.Ask(ctx, kind.Ref(id), record{cmd}); err != nil {
			t.Errorf("%s after the restart: %v", id, err)
			continue
		}
		acked[cmd] = id
	}

	// The table against the acknowledgments.
	rows, err := pool.Query(ctx, "SELECT entity_id, seq, data FROM "+postgreslog.EventsTable(l)+
		" WHERE entity_type = $1 ORDER BY entity_id, seq", ledgerType)
	if err != nil {
		t.Fatal(err)
	}
	count := make(map[string]int)
	where := make(map[string]string)
	lastSeq := make(map[string]int64)
	stored := 0
	for rows.Next() {
		var id string
		var seq int64
		var data []byte
		if err := rows.Scan(&id, &seq, &data); err != nil {
			t.Fatal(err)
		}
		var ev recorded
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatalf("%s#%d: %v", id, seq, err)
		}
		if seq != lastSeq[id]+1 {
			t.Errorf("%s: Seq %d follows %d", id, seq, lastSeq[id])
		}
		lastSeq[id] = seq
		count[ev.Cmd]++
		where[ev.Cmd] = id
		stored++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for cmd, n := range count {
		if n > 1 {
			t.Errorf("command %s is in the table %d times", cmd, n)
		}
	}
	lost := 0
	for cmd, id := range acked {
		switch {
		case count[cmd] == 0:
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged command %s on %s is not in the table", cmd, id)
			}
		case where[cmd] != id:
			t.Errorf("command %s on %s is stored on %s", cmd, id, where[cmd])
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged commands lost", lost)
	}
	t.Logf("%d events stored for %d acknowledged commands (%d more landed without a reply)", stored, len(acked), stored-len(acked))
}

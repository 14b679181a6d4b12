package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/internal/pgdsn"

	"github.com/jackc/pgx/v5"

	"github.com/eventsourced-go/eventsourced/entity/entitytest"
)

func TestAccount(t *testing.T) {
	f := entitytest.New(t, AccountType(), "acc-1")
	entitytest.When(f, Deposit{Amount: 5}).ThenError(ErrNotOpen)
	entitytest.When(f, OpenAccount{Owner: "ann"}).ThenEvents(Opened{Owner: "ann"}).ThenReply(0)
	entitytest.When(f, OpenAccount{Owner: "bob"}).ThenError(ErrAlreadyOpen)
	entitytest.When(f, Deposit{Amount: 0}).ThenError(ErrNotPositive)
	entitytest.When(f, Deposit{Amount: 500}).ThenEvents(Deposited{Amount: 500}).ThenReply(500)
	entitytest.When(f, Withdraw{Amount: 501}).ThenError(ErrInsufficientFunds)
	entitytest.When(f, Withdraw{Amount: 200}).ThenEvents(Withdrawn{Amount: 200}).ThenReply(300).
		ThenState(Account{Open: true, Owner: "ann", Balance: 300})
	entitytest.When(f, Balance{}).ThenNoEvents().ThenReply(300)
}

func TestRunNeedsDatabase(t *testing.T) {
	if _, err := run(context.Background(), config{accounts: 1, workers: 1}, new(strings.Builder)); err == nil {
		t.Error("run without a DSN succeeded")
	}
}

// TestRun runs the example twice against the test database, in a schema of
// its own: the second run continues with the accounts of the first, and
// both times the books balance.
func TestRun(t *testing.T) {
	dsn := pgdsn.Require(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "bank_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := config{dsn: dsn, schema: schema, prefix: "bank_", accounts: 20, ops: 600, workers: 16}
	var money int64
	for i := range 2 {
		var out strings.Builder
		rep, err := run(ctx, cfg, &out)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out.String())
		}
		if rep.ok+rep.rejected != int64(cfg.ops) {
			t.Errorf("run %d: %d done and %d rejected, want %d operations", i+1, rep.ok, rep.rejected, cfg.ops)
		}
		if rep.balances < money && i > 0 && rep.ok == 0 {
			t.Errorf("run %d lost money: %d, was %d", i+1, rep.balances, money)
		}
		money = rep.balances
		if !strings.Contains(out.String(), "the books balance") {
			t.Errorf("run %d output:\n%s", i+1, out.String())
		}
	}
}

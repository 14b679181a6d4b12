package entity_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// Account is the state of a bank account entity.
type Account struct{ Balance int }

// AccountEvent is implemented by the account's events.
type AccountEvent interface{ accountEvent() }

// Deposited is persisted by Deposit.
type Deposited struct{ Amount int }

// Withdrawn is persisted by Withdraw.
type Withdrawn struct{ Amount int }

func (Deposited) accountEvent() {}
func (Withdrawn) accountEvent() {}

var ErrInsufficientFunds = errors.New("insufficient funds")

// Deposit replies with the new balance.
type Deposit struct{ Amount int }

func (c Deposit) Handle(tx *entity.Tx[Account, AccountEvent]) (int, error) {
	return tx.Persist(Deposited{c.Amount}).Balance, nil
}

// Withdraw replies with the new balance or rejects.
type Withdraw struct{ Amount int }

func (c Withdraw) Handle(tx *entity.Tx[Account, AccountEvent]) (int, error) {
	if tx.State().Balance < c.Amount {
		return 0, fmt.Errorf("withdraw %d from %s: %w", c.Amount, tx.ID(), ErrInsufficientFunds)
	}
	return tx.Persist(Withdrawn{c.Amount}).Balance, nil
}

func Example() {
	events := binarize.NewRegistry[AccountEvent](binarize.Msgpack)
	binarize.MustRegister[Deposited](events, "Deposited")
	binarize.MustRegister[Withdrawn](events, "Withdrawn")
	accountType := entity.Type[Account, AccountEvent]{
		Name: "Account",
		Apply: func(s Account, e AccountEvent) Account {
			switch e := e.(type) {
			case Deposited:
				s.Balance += e.Amount
			case Withdrawn:
				s.Balance -= e.Amount
			}
			return s
		},
		Events: events,
	}

	ctx := context.Background()
	sys, err := entity.NewSystem(eventlog.NewMemory())
	if err != nil {
		panic(err)
	}
	defer sys.Shutdown(ctx)
	accounts, err := entity.Register(sys, accountType)
	if err != nil {
		panic(err)
	}

	alice := accounts.Ref("alice")
	balance, _ := entity.Ask(ctx, alice, Deposit{Amount: 100})
	fmt.Println("balance:", balance)
	_, err = entity.Ask(ctx, alice, Withdraw{Amount: 500})
	fmt.Println("rejected:", errors.Is(err, ErrInsufficientFunds), err)
	balance, _ = entity.Ask(ctx, alice, Withdraw{Amount: 30})
	fmt.Println("balance:", balance)
	// Output:
	// balance: 100
	// rejected: true withdraw 500 from alice: insufficient funds
	// balance: 70
}

func ExampleKind_Delete() {
	events := binarize.NewRegistry[AccountEvent](binarize.Msgpack)
	binarize.MustRegister[Deposited](events, "Deposited")
	accountType := entity.Type[Account, AccountEvent]{
		Name: "Account",
		Apply: func(s Account, e AccountEvent) Account {
			if d, ok := e.(Deposited); ok {
				s.Balance += d.Amount
			}
			return s
		},
		Events: events,
	}
	ctx := context.Background()
	sys, _ := entity.NewSystem(eventlog.NewMemory())
	defer sys.Shutdown(ctx)
	accounts, _ := entity.Register(sys, accountType)

	entity.Ask(ctx, accounts.Ref("bob"), Deposit{Amount: 10})
	entity.Ask(ctx, accounts.Ref("bob"), Deposit{Amount: 5})
	seq, err := accounts.Delete(ctx, "bob")
	fmt.Println("deleted at seq", seq, err)

	_, err = entity.Ask(ctx, accounts.Ref("bob"), Deposit{Amount: 1})
	var deleted *eventlog.DeletedError
	fmt.Println(errors.As(err, &deleted), deleted.Seq)
	fmt.Println(err)
	// Output:
	// deleted at seq 2 <nil>
	// true 2
	// entity: recover Account/bob at seq 1: read events: eventlog: Account/bob was deleted at seq 2; its id cannot be used again
}

func ExampleWithIdempotencyKey() {
	events := binarize.NewRegistry[AccountEvent](binarize.Msgpack)
	binarize.MustRegister[Deposited](events, "Deposited")
	accountType := entity.Type[Account, AccountEvent]{
		Name: "Account",
		Apply: func(s Account, e AccountEvent) Account {
			if d, ok := e.(Deposited); ok {
				s.Balance += d.Amount
			}
			return s
		},
		Events: events,
	}
	ctx := context.Background()
	log := eventlog.NewMemory()
	sys, _ := entity.NewSystem(log)
	defer sys.Shutdown(ctx)
	accounts, _ := entity.Register(sys, accountType, entity.WithIdempotency())
	carol := accounts.Ref("carol")

	// A process manager derives the key from what triggered the command,
	// so a re-send after a crash carries the same one.
	keyed := entity.WithIdempotencyKey(ctx, "payout/p-7/42/0")
	balance, _ := entity.Ask(keyed, carol, Deposit{Amount: 100})
	fmt.Println("first:", balance)
	entity.Ask(ctx, carol, Deposit{Amount: 1}) // another command, unkeyed

	balance, err := entity.Ask(keyed, carol, Deposit{Amount: 100}) // the re-send
	fmt.Println("re-sent:", balance, err)
	seq, _ := log.LastSeq(ctx, "Account", "carol")
	fmt.Println("events:", seq)
	for rec := range log.ReadEntity(ctx, "Account", "carol", 1) {
		fmt.Println(rec.Seq, rec.Metadata[entity.IdempotencyKeyMetadata], rec.Metadata[entity.IdempotencyReplyMetadata])
		break
	}
	// Output:
	// first: 100
	// re-sent: 100 <nil>
	// events: 2
	// 1 payout/p-7/42/0 100
}

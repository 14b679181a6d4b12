package main

import (
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/binarize"
	"github.com/eventsourced-go/eventsourced/entity"
)

// Account is the state of a bank account.
type Account struct {
	Open    bool   `json:"open"`
	Owner   string `json:"owner,omitempty"`
	Balance int64  `json:"balance"` // in cents
}

// Event is implemented by every account event.
type Event interface{ isAccountEvent() }

// Opened is persisted when an account is opened.
type Opened struct {
	Owner string `json:"owner"`
}

// Deposited is persisted when money comes in.
type Deposited struct {
	Amount int64 `json:"amount"`
}

// Withdrawn is persisted when money goes out.
type Withdrawn struct {
	Amount int64 `json:"amount"`
}

func (Opened) isAccountEvent()    {}
func (Deposited) isAccountEvent() {}
func (Withdrawn) isAccountEvent() {}

// Errors of rejected commands.
var (
	ErrAlreadyOpen       = errors.New("account already open")
	ErrNotOpen           = errors.New("account not open")
	ErrNotPositive       = errors.New("amount must be positive")
	ErrInsufficientFunds = errors.New("insufficient funds")
)

// OpenAccount opens the account for Owner and replies with the balance (0).
type OpenAccount struct{ Owner string }

// Handle implements entity.Command.
func (c OpenAccount) Handle(tx *entity.Tx[Account, Event]) (int64, error) {
	if tx.State().Open {
		return 0, fmt.Errorf("open %s: %w", tx.ID(), ErrAlreadyOpen)
	}
	return tx.Persist(Opened{Owner: c.Owner}).Balance, nil
}

// Deposit adds Amount cents and replies with the new balance.
type Deposit struct{ Amount int64 }

// Handle implements entity.Command.
func (c Deposit) Handle(tx *entity.Tx[Account, Event]) (int64, error) {
	switch {
	case !tx.State().Open:
		return 0, fmt.Errorf("deposit to %s: %w", tx.ID(), ErrNotOpen)
	case c.Amount <= 0:
		return 0, fmt.Errorf("deposit %d to %s: %w", c.Amount, tx.ID(), ErrNotPositive)
	}
	return tx.Persist(Deposited{Amount: c.Amount}).Balance, nil
}

// Withdraw takes Amount cents out, if the balance covers it, and replies
// with the new balance.
type Withdraw struct{ Amount int64 }

// Handle implements entity.Command.
func (c Withdraw) Handle(tx *entity.Tx[Account, Event]) (int64, error) {
	s := tx.State()
	switch {
	case !s.Open:
		return 0, fmt.Errorf("withdraw from %s: %w", tx.ID(), ErrNotOpen)
	case c.Amount <= 0:
		return 0, fmt.Errorf("withdraw %d from %s: %w", c.Amount, tx.ID(), ErrNotPositive)
	case s.Balance < c.Amount:
		return 0, fmt.Errorf("withdraw %d from %s (balance %d): %w", c.Amount, tx.ID(), s.Balance, ErrInsufficientFunds)
	}
	return tx.Persist(Withdrawn{Amount: c.Amount}).Balance, nil
}

// Balance replies with the balance without persisting.
type Balance struct{}

// Handle implements entity.Command.
func (Balance) Handle(tx *entity.Tx[Account, Event]) (int64, error) {
	if !tx.State().Open {
		return 0, fmt.Errorf("balance of %s: %w", tx.ID(), ErrNotOpen)
	}
	return tx.State().Balance, nil
}

// AccountType is the account entity type. Events and state are JSON, so
// they are readable in psql:
//
//	SELECT entity_id, seq, name, convert_from(data, 'UTF8') FROM bank_events;
func AccountType() entity.Type[Account, Event] {
	events := binarize.NewRegistry[Event](binarize.JSON)
	binarize.MustRegister[Opened](events, "Opened")
	binarize.MustRegister[Deposited](events, "Deposited")
	binarize.MustRegister[Withdrawn](events, "Withdrawn")
	return entity.Type[Account, Event]{
		Name:   "Account",
		Apply:  apply,
		Events: events,
		State:  binarize.Value[Account](binarize.JSON),
	}
}

func apply(s Account, e Event) Account {
	switch e := e.(type) {
	case Opened:
		s.Open, s.Owner = true, e.Owner
	case Deposited:
		s.Balance += e.Amount
	case Withdrawn:
		s.Balance -= e.Amount
	}
	return s
}

package binarize_test

import "time"

// Event is the polymorphic event type of the tests: an account's history.
type Event interface{ isEvent() }

// Opened is an event registered as a value type.
type Opened struct {
	ID    string   `json:"id"`
	Owner string   `json:"owner"`
	Tags  []string `json:"tags,omitempty"`
}

// Deposited is the current (revision 2) shape of a deposit: cents, not a
// whole amount.
type Deposited struct {
	Cents int64  `json:"cents"`
	Note  string `json:"note,omitempty"`
}

// Closed is an event registered as a pointer type.
type Closed struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func (Opened) isEvent()    {}
func (Deposited) isEvent() {}
func (*Closed) isEvent()   {}

// DepositedV1 is the revision 1 shape of "Deposited": a whole amount.
type DepositedV1 struct {
	Amount int `json:"amount"`
}

// MoneyIn is the revision 0 shape of the event later renamed "Deposited".
type MoneyIn struct {
	Euros int    `json:"euros"`
	Memo  string `json:"memo"`
}

// Account is an entity state, for Value codecs.
type Account struct {
	ID      string            `json:"id"`
	Balance int64             `json:"balance"`
	Labels  map[string]string `json:"labels,omitempty"`
	History []int64           `json:"history,omitempty"`
	Owner   *Person           `json:"owner,omitempty"`
}

// Person is nested in Account.
type Person struct {
	Name string `json:"name"`
	Age  uint8  `json:"age"`
}

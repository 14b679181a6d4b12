package entity

import (
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

var (
	// ErrClosed is returned by calls on a [System] after Shutdown or Close.
	ErrClosed = errors.New("entity: system closed")
	// ErrMailboxFull is returned by [Ask] when the entity already has as
	// many commands waiting as its mailbox holds (see [WithMailboxSize]).
	ErrMailboxFull = errors.New("entity: mailbox full")
	// ErrInvalid reports a bad argument or option; the message names it.
	ErrInvalid = errors.New("entity: invalid argument")
	// ErrRecovery is matched by every [*RecoveryError].
	ErrRecovery = errors.New("entity: recovery failed")
	// ErrPersist is matched by every [*PersistError].
	ErrPersist = errors.New("entity: persist failed")
	// ErrPanic is matched by every [*PanicError].
	ErrPanic = errors.New("entity: panic")
	// ErrUnusableSnapshot is matched by the [*RecoveryError] of an entity
	// whose latest snapshot recovery could not use (a state revision the
	// State codec cannot read, bytes it cannot decode) when it could not
	// recover without it: under [FailOnUnusableSnapshot], or when the events
	// the snapshot covers were deleted ([WithDeleteEventsOnSnapshot]).
	ErrUnusableSnapshot = errors.New("entity: unusable snapshot")
	// ErrOutcomeUnknown is matched by an error from [Ask] after which the
	// command may or may not have taken effect: its append failed in a way
	// that leaves it unknown whether the events landed (a [*PersistError]
	// whose cause is not a conflict or a refusal), or its caller gave up
	// after the command had started. The entity recovers from the log
	// before its next command, so a later command sees what happened. An
	// error from Ask that does not match it means that nothing of the
	// command was persisted and that it will not run later.
	ErrOutcomeUnknown = errors.New("entity: outcome unknown")
)

// PanicError reports a panic in user code (a command handler, Apply or a
// codec). The entity recovers its state from the log before its next command.
type PanicError struct {
	EntityType string
	EntityID   string
	// Value is the value passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string {
	return fmt.Sprintf("entity: panic in %s/%s: %v", eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.Value)
}

// Is reports whether target is [ErrPanic].
func (e *PanicError) Is(target error) bool { return target == ErrPanic }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// RecoveryError reports that an entity could not be recovered: a snapshot or
// event could not be read, decoded or applied, or the events have a gap. Seq
// is the Seq of the snapshot or event that failed. Nothing is skipped: the
// entity takes no command until it recovers.
type RecoveryError struct {
	EntityType string
	EntityID   string
	Seq        uint64
	Err        error
}

// Error implements error.
func (e *RecoveryError) Error() string {
	return fmt.Sprintf("entity: recover %s/%s at seq %d: %v", eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.Seq, e.Err)
}

// Is reports whether target is [ErrRecovery].
func (e *RecoveryError) Is(target error) bool { return target == ErrRecovery }

// Unwrap returns the cause.
func (e *RecoveryError) Unwrap() error { return e.Err }

// PersistError reports that appending a batch of events failed. Unless the
// cause is a conflict ([eventlog.ErrConflict]) or a refusal of the events
// ([eventlog.ErrInvalid]), whether the events landed is unknown, and the
// error matches [ErrOutcomeUnknown]. Either way the entity recovers from the
// log before its next command, so the outcome becomes visible there and
// nothing is applied twice. FirstSeq is the Seq the first event of the batch
// would have had.
type PersistError struct {
	EntityType string
	EntityID   string
	FirstSeq   uint64
	Err        error
}

// Error implements error.
func (e *PersistError) Error() string {
	return fmt.Sprintf("entity: persist %s/%s at seq %d: %v", eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.FirstSeq, e.Err)
}

// Is reports whether target is [ErrPersist], or [ErrOutcomeUnknown] unless
// the log said that nothing was written.
func (e *PersistError) Is(target error) bool {
	switch target {
	case ErrPersist:
		return true
	case ErrOutcomeUnknown:
		return !errors.Is(e.Err, eventlog.ErrConflict) && !errors.Is(e.Err, eventlog.ErrInvalid)
	}
	return false
}

// Unwrap returns the cause, so errors.Is(err, eventlog.ErrConflict) works.
func (e *PersistError) Unwrap() error { return e.Err }

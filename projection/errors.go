package projection

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalid reports a bad argument or option; the message names it.
	ErrInvalid = errors.New("projection: invalid argument")
	// ErrRunning is returned by [Projection.Start], [Projection.Reset] and
	// [Projection.SetOffset] while the projection runs, and by Start while
	// a Reset or SetOffset is in progress.
	ErrRunning = errors.New("projection: running")
	// ErrOffsetMoved is returned by [OffsetStore.Commit] when the stored
	// offset is no longer the one the runner started the batch from: another
	// runner with the same name moved it, or it was reset. The runner reloads
	// the offset and carries on from there.
	ErrOffsetMoved = errors.New("projection: offset moved")
	// ErrPoison is matched by every [*PoisonError].
	ErrPoison = errors.New("projection: poison event")
	// ErrControlChanged is returned by [Controls.SaveControl] when the
	// control record is no longer at the version the caller read:
	// somebody else wrote it. [UpdateControl] reads it again and retries.
	ErrControlChanged = errors.New("projection: control record changed")
	// ErrNotFound is returned by [DeadLetters] stores and the projection's
	// dead-letter methods for a dead letter that does not exist.
	ErrNotFound = errors.New("projection: dead letter not found")
)

// PoisonError reports the event a projection stopped at: its handler failed
// on it every attempt (see [WithRetry]) and the policy is [StopOnPoison].
// The offset stays before the event, so the next Start handles it again.
type PoisonError struct {
	// Projection is the projection's name.
	Projection string
	// Event identifies the event.
	Event EventRef
	// Err is the handler's last error.
	Err error
}

// Error implements error.
func (e *PoisonError) Error() string {
	return fmt.Sprintf("projection: %s stopped at poison event %s: %v", e.Projection, e.Event, e.Err)
}

// Is reports whether target is [ErrPoison].
func (e *PoisonError) Is(target error) bool { return target == ErrPoison }

// Unwrap returns the handler's error.
func (e *PoisonError) Unwrap() error { return e.Err }

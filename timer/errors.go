package timer

import "errors"

var (
	// ErrInvalid reports a bad argument or option; the message names it.
	ErrInvalid = errors.New("timer: invalid argument")
	// ErrRunning is returned by [Timers.Start] on timers that run already.
	ErrRunning = errors.New("timer: running")
)

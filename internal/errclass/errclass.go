package errclass

// Error is an error with a message that matches each of its sentinels and
// wraps its cause.
type Error struct {
	// Msg is the message; the cause's follows it after ": ". Empty means
	// the cause's message alone.
	Msg string
	// Sentinels are the errors it matches, besides its cause's chain.
	Sentinels []error
	// Cause is the error it wraps, nil if none.
	Cause error
}

// New returns an error with message msg matching sentinels and wrapping
// cause (which may be nil).
func New(msg string, cause error, sentinels ...error) *Error {
	return &Error{Msg: msg, Sentinels: sentinels, Cause: cause}
}

// Error implements error.
func (e *Error) Error() string {
	switch {
	case e.Cause == nil:
		return e.Msg
	case e.Msg == "":
		return e.Cause.Error()
	}
	return e.Msg + ": " + e.Cause.Error()
}

// Unwrap returns the sentinels, then the cause, for errors.Is and
// errors.As.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, len(e.Sentinels)+1)
	out = append(out, e.Sentinels...)
	if e.Cause != nil {
		out = append(out, e.Cause)
	}
	return out
}

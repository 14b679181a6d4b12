package natslog

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/errclass"
)

var (
	// ErrNoJetStream reports a server, or an account, without JetStream.
	ErrNoJetStream = errors.New("natslog: JetStream is not enabled on the server or account")
	// ErrNotSetUp reports a missing stream or bucket, or one whose
	// configuration lacks what natslog needs; [Setup] creates or fixes them.
	ErrNotSetUp = errors.New("natslog: stream or bucket not set up")
	// ErrTooLarge reports an event over the server's max payload or the
	// stream's max message size, or an append of more events than one atomic
	// batch may hold. Errors matching it also match [eventlog.ErrInvalid].
	ErrTooLarge = errors.New("natslog: too large")
	// ErrInvalidOption reports a bad option value; the message names it.
	ErrInvalidOption = errors.New("natslog: invalid option")
	// ErrUnavailable reports that the server could not be reached: the
	// connection dropped while the call was in flight, it was down when the
	// call was made (the client is reconnecting), or nothing answered for the
	// stream. A read that fails with it may be retried as it is; an append
	// that fails with it may or may not have landed. Errors matching it also
	// match [eventlog.ErrUnavailable].
	ErrUnavailable = errors.New("natslog: server unavailable")
)

// unavailable returns an error matching [ErrUnavailable] and
// [eventlog.ErrUnavailable] that says why, wrapping cause (if not nil).
func unavailable(why string, cause error) error {
	return errclass.New("server unavailable: "+why, cause, ErrUnavailable, eventlog.ErrUnavailable)
}

// errNoResponse is the error of a request nothing answered: no server
// serves the stream, for instance while its server restarts. Nothing was
// stored.
var errNoResponse = unavailable("no response from the stream", nil)

// unanswered returns err marked with [ErrUnavailable] if it says that
// nothing answered for the stream (nats.go's no responders, or no response
// to a publish): no server serves it, for instance while its replicas
// elect a leader. Other errors are returned as they are.
func unanswered(err error) error {
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("%w: %w", errNoResponse, err)
	}
	return err
}

// JetStream error codes natslog translates. They are the server's
// ErrorIdentifiers (nats-server/server/errors.json); names follow it.
const (
	codeWrongLastSequence         jetstream.ErrorCode = 10071
	codeWrongLastSequenceConstant jetstream.ErrorCode = 10164
	codeMessageExceedsMaximum     jetstream.ErrorCode = 10054
	codeNotEnabled                jetstream.ErrorCode = 10076
	codeNotEnabledForAccount      jetstream.ErrorCode = 10039
	codeStreamNotFound            jetstream.ErrorCode = 10059
	codeNoMessageFound            jetstream.ErrorCode = 10037
	codeClusterNotAvail           jetstream.ErrorCode = 10008
	codeAtomicDisabled            jetstream.ErrorCode = 10174
	codeAtomicIncomplete          jetstream.ErrorCode = 10176
	codeAtomicTooLarge            jetstream.ErrorCode = 10199
	codeAtomicTooManyInflight     jetstream.ErrorCode = 10210
)

// apiCode returns the JetStream error code err carries, 0 if none.
func apiCode(err error) jetstream.ErrorCode {
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		return je.APIError().ErrorCode
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode
	}
	return 0
}

// isWrongLast reports whether err is the server refusing a message whose
// expected last subject sequence did not match: a possible conflict.
func isWrongLast(err error) bool {
	c := apiCode(err)
	return c == codeWrongLastSequence || c == codeWrongLastSequenceConstant
}

// isNoJetStream reports whether err says JetStream is off.
func isNoJetStream(err error) bool {
	c := apiCode(err)
	return c == codeNotEnabled || c == codeNotEnabledForAccount ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders)
}

// tooLarge returns an error matching [ErrTooLarge] and
// [eventlog.ErrInvalid] with message msg.
func tooLarge(msg string) error {
	return errclass.New(msg, nil, ErrTooLarge, eventlog.ErrInvalid)
}

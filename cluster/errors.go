package cluster

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

var (
	// ErrClosed is returned by calls on a [Member] after Shutdown.
	ErrClosed = errors.New("cluster: member closed")
	// ErrInvalid reports a bad argument or option; the message names it.
	ErrInvalid = errors.New("cluster: invalid argument")
	// ErrUnavailable reports that no member could take the command before the
	// retries ran out: none serves the entity type, the owner was leaving, or
	// the command could not be delivered. The command did not run.
	ErrUnavailable = errors.New("cluster: owner unavailable")
	// ErrUnknownCommand is the answer to a command name the owner has not
	// registered for the entity type (or an unknown entity type). The command
	// did not run.
	ErrUnknownCommand = errors.New("cluster: unknown command")
	// ErrDecode is the answer to a command payload the owner cannot decode, and
	// the error of a reply the caller cannot decode. A reply that cannot be
	// decoded comes from a command that ran.
	ErrDecode = errors.New("cluster: decode failed")
	// ErrTimeout reports that no answer came in time. Whether the command ran
	// is unknown: errors matching it also match [entity.ErrOutcomeUnknown].
	// It is not retried.
	ErrTimeout = errors.New("cluster: request timed out")
	// ErrFenced reports that the member that would run the command stopped
	// running for long enough (see [WithPauseFence]) that the other members
	// dropped it, and protoactor-go never admits a dropped member again: it
	// runs nothing any more and must be restarted. The command did not run.
	// It matches [ErrUnavailable]: another member retries it elsewhere.
	ErrFenced = fmt.Errorf("cluster: member fenced after a pause: %w", ErrUnavailable)
)

// codeUnavailable is what a leaving member answers: the command did not run.
const codeUnavailable = "cluster.unavailable"

// errorRegistry maps error codes to error values, for both directions.
type errorRegistry struct {
	mu     sync.RWMutex // guards codes and values
	codes  []string     // registration order
	values map[string]error
}

var registry = &errorRegistry{values: make(map[string]error)}

func init() {
	for _, r := range []struct {
		code string
		err  error
	}{
		{"entity.closed", entity.ErrClosed},
		{"entity.mailbox_full", entity.ErrMailboxFull},
		{"entity.invalid", entity.ErrInvalid},
		{"entity.recovery", entity.ErrRecovery},
		{"entity.persist", entity.ErrPersist},
		{"entity.panic", entity.ErrPanic},
		{"entity.outcome_unknown", entity.ErrOutcomeUnknown},
		{"entity.unusable_snapshot", entity.ErrUnusableSnapshot},
		{"eventlog.conflict", eventlog.ErrConflict},
		{"eventlog.unavailable", eventlog.ErrUnavailable},
		{"eventlog.deleted", eventlog.ErrDeleted},
		{"eventlog.closed", eventlog.ErrClosed},
		{"eventlog.invalid", eventlog.ErrInvalid},
		{"cluster.closed", ErrClosed},
		{"cluster.invalid", ErrInvalid},
		{codeUnavailable, ErrUnavailable},
		{"cluster.unknown_command", ErrUnknownCommand},
		{"cluster.decode", ErrDecode},
		{"cluster.timeout", ErrTimeout},
		{"cluster.fenced", ErrFenced},
	} {
		if err := RegisterError(r.code, r.err); err != nil {
			panic(err)
		}
	}
}

// RegisterError registers err under code, so that an error matching it
// (errors.Is) on the member that ran a command also matches it on the caller.
// Register the same codes on every member, typically in an init function or
// before [Member.Start]. The sentinels of packages entity, eventlog and cluster
// are registered already. Registering a code twice with the same value is a
// no-op; with another value it is an error.
func RegisterError(code string, err error) error {
	if code == "" || strings.ContainsAny(code, " \t\n") {
		return fmt.Errorf("%w: RegisterError(%q): code must be non-empty without spaces", ErrInvalid, code)
	}
	if err == nil {
		return fmt.Errorf("%w: RegisterError(%q, nil)", ErrInvalid, code)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if prev, ok := registry.values[code]; ok {
		if prev == err {
			return nil
		}
		return fmt.Errorf("%w: RegisterError(%q): code already registered for %v", ErrInvalid, code, prev)
	}
	registry.values[code] = err
	registry.codes = append(registry.codes, code)
	return nil
}

// codesOf returns the codes of the registered errors err matches.
func codesOf(err error) []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	var codes []string
	for _, c := range registry.codes {
		if errors.Is(err, registry.values[c]) {
			codes = append(codes, c)
		}
	}
	return codes
}

func errorOf(code string) error {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	return registry.values[code]
}

// RemoteError is an error returned by the member that ran a command. It
// matches (errors.Is) every registered error the original matched, by code;
// an error matching no registered code keeps only its text.
type RemoteError struct {
	// Codes are the registered codes of the errors the original matched.
	Codes []string
	// Text is the original error's Error().
	Text string
	// Member is the address of the member that answered.
	Member string
}

// Error implements error: the original text.
func (e *RemoteError) Error() string {
	if len(e.Codes) == 0 {
		return fmt.Sprintf("cluster: remote error from %s: %s", e.Member, e.Text)
	}
	return e.Text
}

// Is reports whether target is registered under one of e's codes.
func (e *RemoteError) Is(target error) bool {
	for _, c := range e.Codes {
		if v := errorOf(c); v != nil && v == target {
			return true
		}
	}
	return false
}

// has reports whether e carries code.
func (e *RemoteError) has(code string) bool {
	for _, c := range e.Codes {
		if c == code {
			return true
		}
	}
	return false
}

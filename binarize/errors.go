package binarize

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownEvent reports a Decode of an event name and revision for which
	// nothing is registered: neither the current type nor an upcaster.
	ErrUnknownEvent = errors.New("binarize: unknown event")
	// ErrUnknownRevision reports a [RevisionCodec] asked to decode a
	// revision it cannot read: an older one without an upcaster, or a newer
	// one than its current revision.
	ErrUnknownRevision = errors.New("binarize: unknown revision")
	// ErrNotRegistered reports an Encode of a value whose dynamic type is not
	// registered, or of a nil event.
	ErrNotRegistered = errors.New("binarize: type not registered")
	// ErrDecode is matched by every [*DecodeError]: bytes that could not be
	// turned into a value.
	ErrDecode = errors.New("binarize: decode")
	// ErrEncode is matched by every [*EncodeError]: a value that could not be
	// turned into bytes.
	ErrEncode = errors.New("binarize: encode")
	// ErrInvalid reports a bad registration: an empty name, an interface type,
	// a type that does not implement the event type, a type the format cannot
	// handle, a nil upcast function or an upcast revision that is not lower
	// than the current one.
	ErrInvalid = errors.New("binarize: invalid registration")
	// ErrDuplicate reports a registration that clashes with an earlier one: a
	// name or type already registered, or a second decoder for the same name
	// and revision.
	ErrDuplicate = errors.New("binarize: duplicate registration")
)

// DecodeError reports bytes that could not be decoded. It is returned by
// [Registry.Decode] and by the Decode method of [Value] codecs, and wraps the
// cause: the format's error, an upcaster's error or a recovered panic.
type DecodeError struct {
	// Name is the event name, or the Go type name for a [Value] codec.
	Name string
	// Revision is the schema revision the bytes were written at; 0 for a
	// [Value] codec.
	Revision uint32
	// Size is the length of the bytes that failed to decode.
	Size int
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("binarize: decode %q rev %d (%d bytes): %s", e.Name, e.Revision, e.Size, causeText(e.Err))
}

// Is reports whether target is [ErrDecode].
func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError reports a value that could not be encoded. It is returned by
// [Registry.Encode] and by the Encode method of [Value] codecs, and wraps the
// cause: the format's error or a recovered panic.
type EncodeError struct {
	// Name is the event name, or the Go type name for a [Value] codec.
	Name string
	// Revision is the event's current revision; 0 for a [Value] codec.
	Revision uint32
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *EncodeError) Error() string {
	return fmt.Sprintf("binarize: encode %q rev %d: %s", e.Name, e.Revision, causeText(e.Err))
}

// Is reports whether target is [ErrEncode].
func (e *EncodeError) Is(target error) bool { return target == ErrEncode }

// Unwrap returns the cause.
func (e *EncodeError) Unwrap() error { return e.Err }

// causeText formats a wrapped cause without repeating the package prefix,
// which the errors of this package's formats already carry.
func causeText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.TrimPrefix(err.Error(), "binarize: ")
}

// panicError turns a recovered panic value into an error, keeping an error
// value reachable through errors.Is and errors.As.
func panicError(v any) error {
	if err, ok := v.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", v)
}

// libError prefixes a library error with the package and, unless the library
// already names itself (libPrefix, such as "msgpack:"), with the format name.
func libError(format, libPrefix string, err error) error {
	if strings.HasPrefix(err.Error(), libPrefix) {
		return fmt.Errorf("binarize: %w", err)
	}
	return fmt.Errorf("binarize: %s: %w", format, err)
}

package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/internal/streamkey"
)

// KeySize is the length of a data key's material in bytes: an AES-256 key.
const KeySize = 32

// Key is the data key of one subject, such as a customer.
type Key struct {
	// ID names this key among all the keys a subject ever had: a subject
	// that was forgotten and then given a new key gets a new ID, so data
	// written under the old key stays unreadable.
	ID string
	// Material is the secret: [KeySize] random bytes.
	Material []byte
}

// Store keeps one data key per subject.
//
// Implementations must be safe for concurrent use, from several processes
// for those that share a server, and must pass keystoretest.Run. Every
// method checks its subject with [ValidateSubject] before any I/O, and
// returns an error matching ctx.Err() when ctx is done before it could
// finish. A returned Key is the caller's: mutating its Material, say to
// wipe it after use, does not change the stored key.
type Store interface {
	// Get returns the subject's key. found is false, with a nil error, when
	// the subject has none: it never had one, or it was forgotten.
	Get(ctx context.Context, subject string) (k Key, found bool, err error)
	// GetOrCreate returns the subject's key, creating one with [NewKey] if
	// it has none. Concurrent calls for one subject, from any process
	// sharing the store, all return the same key.
	GetOrCreate(ctx context.Context, subject string) (Key, error)
	// Forget deletes the subject's key. Forgetting a subject that has no
	// key is not an error. Once Forget returns, Get reports the subject
	// as not found in every process sharing the store; a later GetOrCreate
	// gives it a new key with a new ID.
	Forget(ctx context.Context, subject string) error
}

// Closer is implemented by stores that hold resources to release.
type Closer interface {
	// Close releases the store's resources. Afterwards the store's methods
	// return [ErrClosed].
	Close() error
}

var (
	// ErrInvalid reports bad arguments, such as a subject that
	// [ValidateSubject] refuses.
	ErrInvalid = errors.New("keystore: invalid argument")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("keystore: closed")
)

// MaxSubjectLen is the longest subject, in bytes, every Store accepts (255).
const MaxSubjectLen = streamkey.MaxLen

// ValidateSubject checks a subject as every Store must before any I/O: not
// empty, at most [MaxSubjectLen] bytes, valid UTF-8 without NUL bytes. The
// error matches [ErrInvalid] and says which rule broke.
func ValidateSubject(subject string) error {
	if msg := streamkey.CheckAs("subject", subject); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return nil
}

// NewKey returns a new random key: [KeySize] bytes of key material and a
// 128-bit random ID, both from crypto/rand.
func NewKey() (Key, error) {
	b := make([]byte, KeySize+16)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("keystore: new key: %w", err)
	}
	return Key{ID: hex.EncodeToString(b[KeySize:]), Material: b[:KeySize:KeySize]}, nil
}

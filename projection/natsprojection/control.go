package natsprojection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/projection"
)

// Compile-time check that Store has the projection.Controls capability.
var _ projection.Controls = (*Store)(nil)

// DefaultControlBucket is the bucket of control records unless
// [WithControlBucket] says otherwise.
const DefaultControlBucket = "projection_controls"

// WithControlBucket names the bucket of control records that [New]
// creates if it does not exist (default [DefaultControlBucket]). Bucket
// names are letters, digits, '-' and '_'.
func WithControlBucket(name string) Option {
	return func(c *config) error {
		if name == "" || strings.IndexFunc(name, func(r rune) bool { return !isTokenRune(r) }) >= 0 {
			return fmt.Errorf("%w: natsprojection: WithControlBucket(%q): use letters, digits, '-' and '_'", projection.ErrInvalid, name)
		}
		c.controlBucket = name
		return nil
	}
}

// LoadControl implements [projection.Controls]: the version is the key's
// revision.
func (s *Store) LoadControl(ctx context.Context, name string) (projection.Control, uint64, error) {
	var c projection.Control
	if err := ctx.Err(); err != nil {
		return c, 0, err
	}
	e, err := s.controls.Get(ctx, key(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return c, 0, nil
	}
	if err != nil {
		return c, 0, fmt.Errorf("natsprojection: load control of %s: %w", name, err)
	}
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return c, 0, fmt.Errorf("natsprojection: control of %s: %w", name, err)
	}
	return c, e.Revision(), nil
}

// SaveControl implements [projection.Controls]: a create for version 0,
// an update at the revision version otherwise; the server refuses either
// if the key is not as expected.
func (s *Store) SaveControl(ctx context.Context, name string, c projection.Control, version uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	val, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("natsprojection: save control of %s: %w", name, err)
	}
	var rev uint64
	if version == 0 {
		rev, err = s.controls.Create(ctx, key(name), val)
	} else {
		rev, err = s.controls.Update(ctx, key(name), val, version)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("natsprojection: save control of %s: %w: %w", name, projection.ErrControlChanged, err)
	}
	if err != nil {
		return 0, fmt.Errorf("natsprojection: save control of %s: %w", name, err)
	}
	return rev, nil
}

package pgprojection

import "context"

// SetBeforeOffset makes s run f between the handler and the offset update.
func SetBeforeOffset(s *Store, f func(ctx context.Context) error) { s.beforeOffset = f }

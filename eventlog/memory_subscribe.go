package eventlog

import (
	"context"
	"iter"
)

// Subscribe implements [Log]. [Memory.Close] ends every subscription with
// [ErrClosed].
func (m *Memory) Subscribe(ctx context.Context, typ string, after uint64) iter.Seq2[Record, error] {
	return m.readType(ctx, typ, after, true)
}

// waitChan returns a channel that is closed by the next append to ti's
// type, or nil if the type already has events after after.
//
// A subscriber that has caught up waits on this channel, which the next
// append to the type (or Close) closes. The channel is made only when a
// subscriber waits, so waiting costs appenders nothing while no one
// subscribes. Checking and registering under the index's lock means no
// append can slip in between unnoticed.
func (m *Memory) waitChan(ti *typeIndex, after uint64) (<-chan struct{}, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	// Close sets closed before it takes the index locks to wake waiters.
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if ti.lastPos() > after {
		return nil, nil
	}
	if ti.notify == nil {
		ti.notify = make(chan struct{})
	}
	return ti.notify, nil
}

package entity

import (
	"context"
	"fmt"
)

// Target is an entity that commands can be sent to, wherever it lives:
// a local [Ref], or a cluster.Ref whose entity may run on another member
// of a cluster. Code that sends commands through Targets with
// [AskTarget] works unchanged when an entity type moves from one process
// to a cluster.
type Target[S, E any] interface {
	// ID returns the entity id.
	ID() string
	// Type returns the entity type name.
	Type() string
	// Call runs c on the entity and returns its reply, boxed. Use
	// [AskTarget], which makes c and unboxes the reply.
	Call(ctx context.Context, c *Call[S, E]) (any, error)
}

var _ Target[int, int] = Ref[int, int]{}

// Call is a command on its way to a [Target], its reply type erased: what
// a Target that is not a local Ref (a cluster.Ref) needs to send the
// command elsewhere or run it here.
type Call[S, E any] struct {
	cmd any
	run func(ctx context.Context, ref Ref[S, E]) (any, error)
}

// Command returns the command, an entity.Command[S, E, R] for the R of the
// AskTarget that made the Call.
func (c *Call[S, E]) Command() any { return c.cmd }

// RunOn runs the command on the local entity ref with [Ask] and returns
// its reply, boxed.
func (c *Call[S, E]) RunOn(ctx context.Context, ref Ref[S, E]) (any, error) {
	return c.run(ctx, ref)
}

// Call implements [Target]: it runs c on the entity, as [Ask] does.
func (r Ref[S, E]) Call(ctx context.Context, c *Call[S, E]) (any, error) {
	return c.RunOn(ctx, r)
}

// AskTarget sends cmd to the entity t and waits for its reply: [Ask] for a
// local [Ref] (no allocation more than Ask makes), and the Target's own
// way for others, such as a cluster.Ref (cluster.Ask). What Ask says of
// errors holds for both.
func AskTarget[S, E, R any](ctx context.Context, t Target[S, E], cmd Command[S, E, R]) (R, error) {
	var zero R
	if ref, ok := t.(Ref[S, E]); ok {
		return Ask(ctx, ref, cmd)
	}
	if t == nil {
		return zero, fmt.Errorf("%w: AskTarget with a nil Target", ErrInvalid)
	}
	v, err := t.Call(ctx, &Call[S, E]{cmd: cmd, run: func(ctx context.Context, ref Ref[S, E]) (any, error) {
		return Ask(ctx, ref, cmd)
	}})
	if err != nil {
		return zero, err
	}
	r, ok := v.(R)
	if !ok && v != nil {
		return zero, fmt.Errorf("entity: AskTarget %s/%s: reply of type %T, want %T", t.Type(), t.ID(), v, zero)
	}
	return r, nil
}

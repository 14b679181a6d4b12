// Package lifecycle is the Start, Stop and Wait of a component that runs
// in goroutines of its own, such as a projection.Projection or a
// timer.Timers: the current run's cancel, and each run's end and result.
//
// The owner keeps its own lock for its own fields and decides when a run
// may begin (at most one at a time); [Runs] only remembers how to stop
// the current run and what the last one returned:
//
//	ctx, cancel := context.WithCancel(ctx)
//	end := c.runs.Begin(cancel)
//	go func() { end(c.run(ctx)) }()
//	...
//	err := c.runs.Stop(ctx) // cancels the run and waits for end
//	err = c.runs.Wait(ctx)  // the run's result
package lifecycle

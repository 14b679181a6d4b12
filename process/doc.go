// Package process runs process managers (sagas): code that reacts to
// events of some entity types by sending commands to others, on a schedule
// that survives restarts. A process is defined once ([Definition]): the
// entity types it reacts to, how an event maps to an instance of the
// process (a correlation, such as the order id), and a step function that,
// given the instance's state and what happened, returns the new state and
// the effects: commands to send and timers to set or cancel.
//
//	m, err := process.New(sys, process.Definition[Fulfilment]{
//		Name:    "Fulfilment",
//		Sources: []string{"Order", "Payment"},
//		Correlate: func(rec eventlog.Record) (string, bool) { return orderIDOf(rec) },
//		Handle: func(s Fulfilment, in process.Input) (Fulfilment, process.Effects, error) {
//			... // decide from s and in.Record (or in.Timer)
//			return s, process.Effects{
//				Commands: []process.Command{process.Send(payments.Ref(s.PaymentID), Charge{...})},
//				Timers:   []process.Timer{{Name: "unpaid", At: now.Add(15 * time.Minute)}},
//			}, nil
//		},
//	}, offsets, process.WithTimers(timers))
//	m.Start(ctx)
//
// # How it runs
//
// A [Manager] is a projection (package projection) over the source types
// and the type its [Timers] record firings in, read in Position order from
// the offset stored under the process's name. Each instance is an entity
// (package entity) of the type named after the process, whose events
// record its steps: the state after each step, the Position of the input,
// and its pending timers. So the state is event-sourced like an entity's,
// and survives restarts; instances passivate and recover like entities.
//
// For each input the manager asks the instance to run a step: the
// instance runs Handle on its state and records the step, one step at a
// time; then the manager sends the step's commands, in order, sets and
// cancels its timers, and the projection moves its offset.
//
// # Exactly-once effects
//
// A crash (or a failure) between recording a step and carrying out its
// effects makes the projection deliver the input again. The instance
// recognises it by its Position: it was the last step recorded, so the
// instance decides the effects again from the state before it (Handle
// must be deterministic) and records nothing; inputs before it are
// skipped. The commands go out again with the same idempotency keys:
// "<process>/<instance>/<input Position>/<index>" (entity.WithIdempotencyKey).
// A command type that its entity declares idempotent is answered from its
// first outcome, not applied twice, so each command a step decides acts
// once. Commands to entities that do not deduplicate act at least once.
//
// A timer set by a step has the id "<instance>/<name>@<Position of the
// step>" in the [Timers] store; a timer set again under the same name, or
// cancelled, is replaced in the instance's pending timers, and a firing of
// the old one is ignored ([Stats.StaleTimers]). A firing reaches the
// instance as an input (Input.Timer set) through the same path: the
// timers record it as an event, which the manager reads in order with the
// sources' events, so a timer that fires again after a crash is handled
// once. A timer whose time has passed fires at once.
//
// # Failures
//
// A step fails if Handle returns an error (nothing is recorded), if a
// command fails (rejected, or of unknown outcome), or if a timer cannot be
// set. The manager's projection then retries it with backoff
// ([WithProjectionOptions] and projection.WithRetry), delivering the input
// again: commands that succeeded before are answered from their first
// outcome. After the retries, the input is poison: by default the
// manager stops before it and [Manager.Wait] returns a
// projection.PoisonError naming it; projection.SkipPoison with dead
// letters moves past it. A command a target rejects for good should
// rather be modelled as an event the target records (PaymentDeclined), to
// which the process reacts by compensating.
//
// Bad effects are errors that name what is wrong: a [Command] not built
// with [Send], a timer without a name or time, or a name with '/', set
// twice in one step, or any timer without [WithTimers].
//
// # Scale
//
// Unsliced, one projection serves a process and reads its inputs in
// order. [WithSlices] splits the inputs into n slices by instance
// (projection.WithSliceKey): an instance's inputs all go to one slice, in
// Position order, which is what the step bookkeeping above relies on; a
// slicing by the source entity would not keep them together when an
// instance hears from several entities. Run each slice once, in one
// process or spread over a cluster's members, each member running its
// slices with its own System: an instance then only ever steps in the
// member that runs its slice. The steps of one instance run one at a time
// in its entity. Offset commits refuse a second runner of a slice.
package process

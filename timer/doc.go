// Package timer keeps durable timers: a process manager, an entity's
// owner or any code schedules a timer id to fire at a time (or after a
// duration) with a payload, cancels or reschedules it, and [Timers] calls a
// fire function when it is due, after crashes and restarts too, with an
// idempotency key that makes its effects happen once.
//
//	orders, _ := entity.Register(sys, orderType, entity.WithIdempotency()) // keyed commands need it
//	timers, err := timer.New(sys, "payments", offsets, func(ctx context.Context, t timer.Timer) error {
//		// ctx carries the key "payments/<id>/<generation>": the command
//		// acts once, however often the timer fires.
//		_, err := entity.Ask(ctx, orders.Ref(string(t.Payload)), ExpireOrder{})
//		return err
//	})
//	timers.Start(ctx)
//	defer timers.Stop(context.Background())
//	timers.After(ctx, "order-7/expiry", 30*time.Minute, []byte("order-7"))
//	timers.Cancel(ctx, "order-7/expiry") // paid in time
//
// # Model
//
// Timers are entities of a type of their own ("<name>-timers" unless
// [WithEntityType] says otherwise), registered on the entity.System given
// to [New]: one stream per timer id, so every event log (in memory,
// natslog, postgreslog) stores them, with no backend code. A stream holds
// [Scheduled] (due time, payload, generation), [Cancelled] and [Fired]
// events. [Timers.Schedule] of a new or finished id records generation 1,
// then 2 and so on: a reschedule records a new Scheduled with the next
// generation, which replaces the pending one.
//
// The scheduler is a read model: a projection (package projection) of the
// timer type keeps the pending timers in memory, in a min-heap by due
// time, and a pool of workers ([WithConcurrency]) fires the due ones. For
// each, a worker asks the timer entity whether that generation is still
// pending, calls the fire function with ctx carrying
// entity.WithIdempotencyKey(ctx, [Key](name, id, generation)), and then
// records the firing (a [Fired] event, only if the generation is still the
// pending one: a late fire of a rescheduled or cancelled generation
// records nothing). A timer leaves the scheduler when the projection reads
// its Fired, its Cancelled or a newer Scheduled.
//
// # Guarantees
//
//   - At least once: a timer fires after it is due (never before, by the
//     [Clock]), again and again until the fire function returns nil and
//     the firing is recorded. A failing fire function (an error or a
//     panic) is retried with capped exponential backoff ([WithRetry]),
//     forever; it waits in the heap meanwhile, so it never holds a worker
//     and never delays other timers.
//   - Effectively once: every attempt to fire one generation of a timer,
//     in this run or after a restart, carries the same key (also in
//     [Timer.Key]). A command asked with that ctx is answered from its
//     first outcome when it is sent again, so it acts once; its entity
//     type must keep keys (entity.WithIdempotency), or entity.Ask refuses
//     it. Other effects should deduplicate by the key.
//   - A crash or [Timers.Stop] between a fire and its record fires the
//     timer again after the restart, with the same key; a timer whose
//     firing was recorded does not fire again.
//   - Cancelled timers do not fire: the worker asks the timer before each
//     fire, so a timer cancelled before the scheduler began to fire it
//     never fires, even if the scheduler has not read the cancellation
//     yet (after a restart, say). A Cancel that races a fire in progress
//     cannot stop it; the timer is then cancelled, and the firing not
//     recorded.
//   - Timers in the past are not an error: a timer scheduled at a time
//     that has passed is due at once and fires as soon as the scheduler
//     reads it (At tells when it was due). So does After with a duration
//     of 0 or less. A zero time is refused.
//   - Cancel of an unknown timer, of a cancelled one or of a fired one
//     returns nil and records nothing. Schedule of a fired or cancelled
//     id schedules it again as the next generation. Schedule of a pending
//     timer at the same time with the same payload changes nothing, so a
//     Schedule retried after an error of unknown outcome does not
//     reschedule it. [Timers.Get] tells a timer's state and generation.
//   - Recurring timers: a fire function may reschedule its own timer id;
//     the new generation replaces the one firing (whose firing is then
//     not recorded) and fires in its turn, with its own key.
//
// # Restart and the low-water mark
//
// The scheduler's offset store (any projection.OffsetStore: memory,
// pgprojection, natsprojection) keeps a low-water mark under the timers'
// name: the Position before the oldest event still needed, which is the
// Scheduled of the oldest pending timer, or, with none pending, the last
// event read. On Start the scheduler reads the timer events after the
// mark only, rebuilding the heap; the completed timers before it are not
// read again. The mark is safe because a pending timer's Scheduled is
// after it by construction, a timer leaves the scheduler's state only when
// its end is read, and the log delivers events by Position without gaps.
// It is saved every [WithMarkInterval] and on Stop; a mark saved late
// only makes a restart read more. [Status] shows the stored mark (Mark),
// the one the scheduler would store now (Next), and the events read since
// Start (Projection.Handled).
//
// A timer due far ahead would hold the mark at its Scheduled, and every
// restart would read all the timer events since. So the scheduler renews
// the timers that hold the mark back ([WithRenewAfter]): once more than
// max(n, 2 x pending) timer events have been read after the Scheduled of
// a pending timer due more than a minute ahead, it records that
// Scheduled again (same generation, time and payload: the timer does not
// change) and the mark moves on. A restart thus reads about that many
// events plus the pending timers' Scheduled at most, and renewals add at
// most one event for every two read.
//
// # Slices
//
// [WithSlice] splits the scheduler as projection slices split a
// projection: slice i of n reads and fires only the timers whose ids
// projection.SliceOf puts in it, and stores its own mark under
// projection.SliceName(name, i, n). Run each slice in one process at a
// time, each process with its own entity.System on the shared log.
// To change n, stop every slice, call [Reslice], and start the new
// slices.
//
// Any process may schedule and cancel any timer, but a timer entity is
// then live in several Systems, and one that another process wrote since
// answers from stale state until it next appends (which conflicts: the
// log keeps one writer, and Schedule or Cancel returns the conflict, to
// retry) or passivates. The scheduler copes: a timer entity behind the
// generation it read in the log is made to recover before the fire, and
// before the record. A Cancel in a process whose entity is behind can
// miss a generation scheduled elsewhere, though, and a scheduler whose
// entity missed a Cancel made elsewhere can fire a cancelled timer. So
// for the guarantees above, send each timer's Schedule and Cancel through
// the process that runs its slice (projection.SliceOf(Type(), id, n)
// says which), as a cluster would route an entity's commands.
//
// # Entities and process managers
//
// A command handler must not block, so it does not call Schedule itself.
// Two patterns:
//
//   - The caller schedules: after the command that opens a deadline,
//     the caller (a request handler, a process manager) schedules the
//     timer with an id derived from the entity's, such as
//     "<order id>/expiry", and cancels it after the command that closes
//     it. The fire function sends the entity its command with the ctx it
//     gets, which carries the key. Schedule first if a crash between the
//     two must not lose the timer: a timer that fires for nothing is
//     harmless when the entity's command checks its state.
//   - The log schedules: a projection of the entity's events schedules
//     a timer for each event that opens a deadline and cancels it for
//     each that closes one. Schedule and Cancel are commands to the
//     timer's entity, whose type keeps idempotency keys, so a projection
//     that sends them with a key derived from the event (its type, id and
//     Seq) acts once even though it delivers at least once.
//
// [Timers] is also a timer store for process managers (package process):
// a manager follows [Timers.Type] beside its sources and takes each Fired
// event ([Timers.Fired] recognises them) as the firing of its timer, in
// log order. Give such Timers a fire function that returns nil: the
// recorded firing is the signal.
//
// # Limits
//
// The pending timers of a slice are held in memory (an entry with its
// payload each). A payload is at most [MaxPayload] bytes. Firing is as
// precise as the clock and the load allow; [Status] shows what is due
// and in flight. The timer entities passivate after a minute idle
// ([WithKindOptions] to change it).
//
// The scheduler's projection keeps its offset in memory: what the offset
// store keeps is the mark, under the timers' name, where operators' tools
// (esctl) list it.
//
// # Pausing
//
// If the offset store keeps control records ([projection.Controls]: the
// memory, PostgreSQL and NATS stores do), running timers read them at
// Start and every [WithControlInterval]: [projection.Pause] of the
// timers' name (esctl pause), or of a slice's name, stops the firing
// within that interval. Timers that come due meanwhile wait, Schedule and
// Cancel go on, and [Status] reports Paused; [projection.Resume] lets the
// due timers fire. A fire call in progress when the pause is read runs to
// its end.
//
// # Telemetry
//
// The timers' metrics go to the global meter provider unless
// [WithMeterProvider] gives one, with the attribute eventsourced.timers
// naming the timers (their slice's name for a slice):
//
//   - eventsourced.timer.fires: calls of the fire function, by outcome
//     (ok, failed);
//   - eventsourced.timer.lateness (s): how long after its due time a
//     timer's fire function was called successfully;
//   - eventsourced.timer.store.errors: commands to the timer entities that
//     failed and are retried;
//   - eventsourced.timer.pending, .due and .paused: gauges of [Status],
//     reported while the timers run.
//
// The projection that reads the timers reports its own metrics and spans
// (eventsourced.projection.*, named after the timers).
//
// # Concurrency
//
// [Timers] is safe for concurrent use. A running scheduler owns the
// projection's goroutines, a dispatcher, [WithConcurrency] workers and a
// saver of the mark; [Timers.Stop] waits for all of them. The fire
// function runs on the workers, concurrently for different timers, never
// concurrently for one generation of one timer in one process.
//
// # Errors
//
// [New], the options, Schedule, After, Cancel and Get refuse bad
// arguments with errors matching [ErrInvalid] that name them, before any
// I/O. [Timers.Start] returns [ErrRunning] while the scheduler runs.
// Other errors of Schedule, Cancel and Get are entity.Ask's (see
// entity.ErrOutcomeUnknown). [Timers.Wait] returns a
// *projection.PoisonError if a timer event could not be decoded.
package timer

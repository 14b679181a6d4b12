// Package logcopy copies the streams of an event log to another log, for
// instance from NATS JetStream to PostgreSQL or from a backend to memory:
// [Copy] reads each named entity type of the source in Position order and
// appends its events to the target at their own Seqs, then verifies the
// counts.
//
//	cps, err := logcopy.OpenFileCheckpoints("copy.checkpoint")
//	...
//	st, err := logcopy.Copy(ctx, natsLog, pgLog, []string{"Account", "Order"},
//		logcopy.WithCheckpoint(cps))
//
// The caller names the types; a log that implements [eventlog.TypeLister]
// can list them (cmd/esctl's copy does).
//
// # What is kept
//
// Every event keeps its stream (type and id), its Seq, name, revision,
// data and metadata. An empty Data or Metadata may come back nil: logs do
// not tell them apart. Commit time and Position are the target's own: the
// [eventlog.Log] contract lets no writer set them.
//
// Order: each stream's events are appended in Seq order, always. With the
// default [WithConcurrency](1), the events of a type are also appended in
// the source's Position order, so the target's [eventlog.Log.ReadType]
// yields them in the same order as the source's (with other Positions),
// and projections rebuilt from the target see what they saw on the source.
// With more concurrency that holds only between checkpoints (see
// [WithConcurrency]).
//
// Not copied: snapshots (copy them with the snapshot store's own API);
// events deleted from the source with [eventlog.Deleter] (see below);
// streams deleted with [eventlog.StreamDeleter], which the source's
// readers no longer yield, and their tombstones, so a copied id that was
// deleted for good can be used again in the target; events appended to
// the source after the copy read the type's end (the next Copy takes
// them).
//
// # Streams whose first events were deleted
//
// A source stream whose first readable event has a Seq above 1 (its
// earlier events deleted after a snapshot) cannot be reproduced on an
// empty target with its Seqs, and without its snapshot its remaining
// events are not a usable history. Copy refuses it with a [*GapError]
// naming the type, id and Seq, or, with [WithSkipTruncated], leaves it out
// and lists it in [Stats.Skipped].
//
// # Resuming
//
// Copy reads up to [WithCheckpointEvery] events, saves a [Checkpoint]
// saying which source Positions it is about to append, appends them, and
// carries on; the checkpoint is saved in a [CheckpointStore]
// ([WithCheckpoint]: [FileCheckpoints] in a file, written atomically, or
// [MemoryCheckpoints]). After an interruption (an error, a canceled
// context, a crash) the next Copy with the same store starts from the last
// window that may not have been fully appended. Where the target already
// holds events of that window, because they were appended before the
// interruption but not checkpointed, Copy compares each with the source's
// and skips it when equal; one that differs is a [*DiffersError], and
// nothing is ever overwritten.
//
// # Non-empty targets
//
// A target stream that already has an event at a Seq the copy needs,
// outside the window an interrupted copy may have written, makes Copy fail
// with a [*TargetNotEmptyError] naming the type, id, Seq and the target's
// last Seq. [WithExistingTargets] lets Copy compare and skip such events
// instead, as it does when resuming: a target that holds a prefix of the
// source (an earlier copy, say) is completed, and one that holds anything
// else is refused.
//
// # Verification
//
// After copying a type, Copy reads it again in both logs and checks, per
// source stream, that the target has as many events from the stream's
// first readable Seq on and that its last Seq is the same; source events
// appended after the copy's end are not counted. Differences are a
// [*VerifyError] listing the first streams. Target streams absent from the
// source are not checked. Verification holds one small entry per stream
// of the type in memory.
//
// # Concurrency
//
// Copy may be called from several goroutines for different types or logs;
// two Copies into the same target streams conflict (the loser fails with
// [ErrTargetNotEmpty] or gives up after repeated conflicts), and two with
// one [CheckpointStore] and the same type must not run at once. Within one
// call, [WithConcurrency] sets how many appends run at once; the progress
// function is called on the caller's goroutine. [MemoryCheckpoints] and
// [FileCheckpoints] are safe for concurrent use. Copy is meant for a
// source that nobody writes to meanwhile and a target nobody else writes
// to; events appended to the source during the copy are either copied or
// left to the next Copy.
//
// # Errors
//
// Each condition has a sentinel, matched with [errors.Is]:
// [ErrInvalid] for bad arguments and options (nil logs, no types, an
// invalid or repeated type name), before any I/O; [ErrTargetNotEmpty]
// ([*TargetNotEmptyError]); [ErrDiffers] ([*DiffersError]); [ErrGap]
// ([*GapError]); [ErrVerify] ([*VerifyError]); [ErrCheckpoint] for a
// checkpoint that cannot be loaded or saved. Each struct error names the
// type, id and Seq concerned, and [errors.As] gives access to them. Errors
// of the logs are wrapped with the type, id and Seqs of the append or read
// that failed, so [eventlog.ErrUnavailable], [eventlog.ErrDeleted],
// [eventlog.ErrInvalid] (an event the target cannot store) and context
// errors still match. After any error the target holds a prefix of each
// stream it was copying, and the checkpoint says where to resume: run Copy
// again to resume.
package logcopy

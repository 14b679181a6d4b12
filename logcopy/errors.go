package logcopy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

var (
	// ErrInvalid reports a bad argument or option; the message names it.
	ErrInvalid = errors.New("logcopy: invalid argument")
	// ErrTargetNotEmpty is matched by every [*TargetNotEmptyError]: a
	// target stream already holds events the copy did not write, and
	// [WithExistingTargets] was not given.
	ErrTargetNotEmpty = errors.New("logcopy: target stream not empty")
	// ErrDiffers is matched by every [*DiffersError]: the target already
	// holds an event at a Seq the copy needs, and it is not the source's.
	ErrDiffers = errors.New("logcopy: target event differs from source")
	// ErrGap is matched by every [*GapError]: the target stream ends before
	// the Seq the next source event follows, so copying it would renumber
	// it.
	ErrGap = errors.New("logcopy: seq gap")
	// ErrVerify is matched by every [*VerifyError]: after the copy, the
	// target's counts do not match the source's.
	ErrVerify = errors.New("logcopy: verification failed")
	// ErrCheckpoint reports a checkpoint that cannot be loaded or saved, or
	// a checkpoint file that cannot be parsed.
	ErrCheckpoint = errors.New("logcopy: checkpoint")
)

// TargetNotEmptyError reports a target stream that already has events
// where the copy was to append the source's, outside the range a resumed
// copy may have written before it was interrupted. Nothing was written to
// the stream by this attempt.
type TargetNotEmptyError struct {
	EntityType string
	EntityID   string
	// Seq is the Seq of the source event the copy was to append.
	Seq uint64
	// TargetLastSeq is the target stream's last Seq.
	TargetLastSeq uint64
}

// Error implements error.
func (e *TargetNotEmptyError) Error() string {
	return fmt.Sprintf("logcopy: target stream %s/%s is not empty: it has events up to seq %d, so source seq %d was not copied (WithExistingTargets compares and skips equal events)",
		eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.TargetLastSeq, e.Seq)
}

// Is reports whether target is [ErrTargetNotEmpty].
func (e *TargetNotEmptyError) Is(target error) bool { return target == ErrTargetNotEmpty }

// DiffersError reports a target event at a Seq the copy needs that is not
// the source's event. The copy never overwrites it.
type DiffersError struct {
	EntityType string
	EntityID   string
	Seq        uint64
	// Field names what differs: "name", "revision", "data", "metadata", or
	// "missing" when the target has no readable event at Seq (deleted).
	Field string
	// Source and Target quote the differing values, cut short.
	Source, Target string
}

// Error implements error.
func (e *DiffersError) Error() string {
	if e.Field == "missing" {
		return fmt.Sprintf("logcopy: %s/%s seq %d: the target's last seq covers it but the target has no readable event there (deleted), so it cannot be compared with the source",
			eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.Seq)
	}
	return fmt.Sprintf("logcopy: %s/%s seq %d differs between source and target: %s %s in the source, %s in the target",
		eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.Seq, e.Field, e.Source, e.Target)
}

// Is reports whether target is [ErrDiffers].
func (e *DiffersError) Is(target error) bool { return target == ErrDiffers }

// GapError reports a source event whose predecessors the target stream
// lacks: the target's last Seq is below Seq-1. Usually the source's
// earlier events were deleted ([eventlog.Deleter], after a snapshot) and
// the stream only makes sense with its snapshots, which a log copy does not
// carry; see [WithSkipTruncated].
type GapError struct {
	EntityType string
	EntityID   string
	// Seq is the Seq of the source event that could not be copied.
	Seq uint64
	// TargetLastSeq is the target stream's last Seq.
	TargetLastSeq uint64
}

// Error implements error.
func (e *GapError) Error() string {
	return fmt.Sprintf("logcopy: cannot copy %s/%s seq %d: the target's last seq is %d, not %d (the source's earlier events were deleted, or the target lost them; WithSkipTruncated skips streams whose target is empty)",
		eventlog.FormatID(e.EntityType), eventlog.FormatID(e.EntityID), e.Seq, e.TargetLastSeq, e.Seq-1)
}

// Is reports whether target is [ErrGap].
func (e *GapError) Is(target error) bool { return target == ErrGap }

// StreamDiff is one stream whose counts differ between source and target
// after a copy. Only the target's events from the source's first readable
// Seq on are counted.
type StreamDiff struct {
	EntityID string
	// SourceEvents and SourceLastSeq count the source stream's readable
	// events and give its last Seq, up to the copy's end Position.
	SourceEvents  int64
	SourceLastSeq uint64
	// TargetEvents and TargetLastSeq are the same for the target stream.
	TargetEvents  int64
	TargetLastSeq uint64
}

// String formats the difference for error messages.
func (d StreamDiff) String() string {
	return fmt.Sprintf("%s: source %d events to seq %d, target %d events to seq %d",
		eventlog.FormatID(d.EntityID), d.SourceEvents, d.SourceLastSeq, d.TargetEvents, d.TargetLastSeq)
}

// maxDiffs bounds the streams a [VerifyError] lists.
const maxDiffs = 10

// VerifyError reports the streams of one type whose counts differ after the
// copy: events appended to either log while it ran, or a backend that lost
// or invented events.
type VerifyError struct {
	EntityType string
	// Streams are the first differing streams, by id, at most 10.
	Streams []StreamDiff
	// Total is how many streams differ.
	Total int
	// SourceEvents and TargetEvents are the type's totals.
	SourceEvents, TargetEvents int64
}

// Error implements error.
func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "logcopy: verifying %s: %d streams differ (source %d events, target %d)",
		eventlog.FormatID(e.EntityType), e.Total, e.SourceEvents, e.TargetEvents)
	for i, d := range e.Streams {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	if e.Total > len(e.Streams) {
		fmt.Fprintf(&b, "; and %d more", e.Total-len(e.Streams))
	}
	return b.String()
}

// Is reports whether target is [ErrVerify].
func (e *VerifyError) Is(target error) bool { return target == ErrVerify }

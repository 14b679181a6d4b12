package logcopy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// differ returns how target t differs from source record s, nil if it does
// not. Empty and nil Data or Metadata are equal: backends store no
// difference between them.
func differ(s, t eventlog.Record) *DiffersError {
	d := &DiffersError{EntityType: s.EntityType, EntityID: s.EntityID, Seq: s.Seq}
	switch {
	case s.Name != t.Name:
		d.Field, d.Source, d.Target = "name", quote(s.Name), quote(t.Name)
	case s.Revision != t.Revision:
		d.Field, d.Source, d.Target = "revision", strconv.FormatUint(uint64(s.Revision), 10), strconv.FormatUint(uint64(t.Revision), 10)
	case !bytes.Equal(s.Data, t.Data):
		d.Field, d.Source, d.Target = "data", quoteData(s.Data), quoteData(t.Data)
	case !maps.Equal(s.Metadata, t.Metadata):
		d.Field, d.Source, d.Target = "metadata", quoteMeta(s.Metadata), quoteMeta(t.Metadata)
	default:
		return nil
	}
	return d
}

// quoteLen bounds what an error message quotes of a value.
const quoteLen = 32

func quote(s string) string {
	if len(s) > quoteLen {
		return fmt.Sprintf("%q... (%d bytes)", s[:quoteLen], len(s))
	}
	return strconv.Quote(s)
}

func quoteData(b []byte) string {
	if len(b) > quoteLen {
		return fmt.Sprintf("%q... (%d bytes)", b[:quoteLen], len(b))
	}
	return fmt.Sprintf("%q (%d bytes)", b, len(b))
}

func quoteMeta(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		if b.Len() > 2*quoteLen {
			fmt.Fprintf(&b, "... (%d keys)", len(keys))
			break
		}
		fmt.Fprintf(&b, "%s: %s", quote(k), quote(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// streamCount is what verification counts of one stream.
type streamCount struct {
	first, last uint64 // source
	n           int64
	tlast       uint64 // target, from first on
	tn          int64
}

// verify counts the type's events in the source up to Position end and in
// the target, per stream, and checks that the target has as many events of
// each source stream from its first readable Seq on, ending at the same
// Seq. It holds one small entry per stream in memory.
func (c *copier) verify(ctx context.Context, end uint64, ts *TypeStats) error {
	streams := map[string]*streamCount{}
	var srcEvents, dstEvents int64
	if end > 0 {
		for r, err := range c.src.ReadType(ctx, c.typ, 0) {
			if err != nil {
				return fmt.Errorf("logcopy: verifying %s: read the source: %w", eventlog.FormatID(c.typ), err)
			}
			if r.Position > end {
				break // Appended after the copy: the next Copy takes it.
			}
			s := streams[r.EntityID]
			if s == nil {
				s = &streamCount{first: r.Seq}
				streams[r.EntityID] = s
			}
			s.n++
			s.last = r.Seq
			srcEvents++
		}
		for r, err := range c.dst.ReadType(ctx, c.typ, 0) {
			if err != nil {
				return fmt.Errorf("logcopy: verifying %s: read the target: %w", eventlog.FormatID(c.typ), err)
			}
			s := streams[r.EntityID]
			if s == nil || r.Seq < s.first {
				continue
			}
			s.tn++
			s.tlast = max(s.tlast, r.Seq)
			dstEvents++
		}
	}
	var diffs []StreamDiff
	ts.Skipped = nil
	for _, id := range slices.Sorted(maps.Keys(streams)) {
		s := streams[id]
		switch {
		case s.tn == s.n && s.tlast == s.last:
		case s.tn == 0 && s.first > 1 && c.cfg.skipTruncated:
			ts.Skipped = append(ts.Skipped, Stream{EntityType: c.typ, EntityID: id, FirstSeq: s.first, LastSeq: s.last})
			srcEvents -= s.n
			continue
		default:
			diffs = append(diffs, StreamDiff{EntityID: id, SourceEvents: s.n, SourceLastSeq: s.last, TargetEvents: s.tn, TargetLastSeq: s.tlast})
			continue
		}
		ts.Streams++
	}
	ts.Events = srcEvents
	if len(diffs) > 0 {
		ts.Streams, ts.Events = 0, 0
		return &VerifyError{EntityType: c.typ, Streams: diffs[:min(len(diffs), maxDiffs)], Total: len(diffs), SourceEvents: srcEvents, TargetEvents: dstEvents}
	}
	ts.Verified = true
	return nil
}

package postgreslog

import (
	"context"
	"iter"
	"strings"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// ReadAll implements [eventlog.AllReader]. It pages by "position > after"
// through the index on position ([SchemaVersion] 3), like [Log.ReadType]
// through the type's index, and is gap-free for the same reason: it reads
// only the events of transactions that ended before its query's snapshot,
// across all types (see the package documentation). With types it reads
// only theirs; with one type it is ReadType. It ends as ReadType does.
func (l *Log) ReadAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.readAll(ctx, after, types, false)
}

// SubscribeAll implements [eventlog.AllReader]. After the current end it
// waits for a notification that any type has new events (one type:
// that type; see [WithNotify]), at most the poll interval (see
// [WithPollInterval]), and reads again. A database error ends the
// subscription with that error; [Log.Close] ends it with
// [eventlog.ErrClosed].
func (l *Log) SubscribeAll(ctx context.Context, after uint64, types ...string) iter.Seq2[eventlog.Record, error] {
	return l.readAll(ctx, after, types, true)
}

func (l *Log) readAll(ctx context.Context, after uint64, types []string, live bool) iter.Seq2[eventlog.Record, error] {
	return func(yield func(eventlog.Record, error) bool) {
		types, err := eventlog.ValidateTypes(types)
		if err != nil {
			yield(eventlog.Record{}, err)
			return
		}
		if len(types) == 1 {
			// One type is ReadType, which reads by the type's index and
			// wakes only for appends of the type.
			l.readType(ctx, types[0], after, live)(yield)
			return
		}
		sql, args, what := l.sql.readAll, []any{nil, readPage}, "every type"
		if types != nil {
			sql, args = l.sql.readAllTypes, []any{nil, readPage, types}
			quoted := make([]string, len(types))
			for i, typ := range types {
				quoted[i] = eventlog.FormatID(typ)
			}
			what = "types " + strings.Join(quoted, ", ")
		}
		// Readers of several types wake for appends of any type.
		l.pages(ctx, after, live, yield, l.hub.waitAny, func(after uint64) (page []eventlog.Record, held uint64, err error) {
			args[0] = int64(after)
			page, err = l.queryRecords(ctx, "", "", &held, sql, args...)
			if err != nil {
				return nil, 0, l.wrap(ctx, err, "read %s after position %d", what, after)
			}
			return page, held, nil
		})
	}
}

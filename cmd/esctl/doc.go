// Command esctl operates eventsourced-go event logs, projections and dead
// letters in PostgreSQL or NATS JetStream, for the people who run the
// system.
//
//	go install github.com/eventsourced-go/eventsourced/cmd/esctl@latest
//	esctl <command> [flags] [arguments]
//
// Commands:
//
//	types                          list the entity types (eventlog.TypeLister)
//	ids <type>                     list the ids of a type
//	events <type> <id>             show an entity's events with metadata (--from SEQ)
//	follow                         print events as they commit until Ctrl-C or SIGTERM
//	                               (--type T..., --all-types; --after POS, default the current end)
//	projections [name...]          list stored offsets and slices ("name[i/n]") with
//	                               their lag (--type T... or --all-types, --lag-limit N)
//	set-offset <name> <position>   move a stopped projection's offset
//	reset <name>                   set a stopped projection's offset to 0
//	skip <name>                    move a stopped projection's offset past its next
//	                               --count events of --type (or --all-types)
//	dead-letters [name...]         list dead letters (--after POS, --limit N)
//	drop-dead-letter <name> <pos>  delete a dead letter
//	copy                           copy the log to another with logcopy (--to-*, --type T...,
//	                               --checkpoint FILE, --setup, --existing, --skip-truncated)
//	retry-dead-letter <name> <pos> ask the projection's runners to retry a dead letter
//	pause <name>                   pause a projection (or slice) wherever it runs
//	resume <name>                  resume it
//
// Flags may come before or after the arguments; "--" ends them.
//
// # Backends
//
// Exactly one backend, named by flags or, when no flag names one, by the
// environment:
//
//	--pg-dsn DSN (or $EVENTSOURCED_POSTGRES_DSN), --pg-schema, --pg-table-prefix
//	    as postgreslog.WithSchema and WithTablePrefix;
//	    --pg-offsets-table, --pg-dead-letter-table, --pg-control-table as pgprojection's options
//	--nats-url URL (or $NATS_URL), --nats-creds FILE, --nats-stream, --nats-prefix
//	    as natslog.WithStream and WithPrefix;
//	    --nats-offsets-bucket, --nats-dead-letter-bucket, --nats-control-bucket as natsprojection's
//
// esctl checks that the log's tables or stream exist and never creates
// them, nor the offset and dead-letter tables or buckets, except copy's
// target with --setup. The copy target takes the same flags behind "to-"
// (--to-pg-dsn, --to-nats-url, ...), without environment variables.
//
// # Output
//
// Text by default: events as one line each, "Type/id seq=N pos=N time=...
// name=... rev=N data=ENC:VALUE meta.KEY=VALUE"; words with spaces are
// quoted. With --json every command prints one JSON object per line. Event
// data is shown without the application's codecs: as JSON if it is JSON
// (encoding "json"); as JSON if it is one msgpack map or array that uses
// every byte ("msgpack"); as "encrypted" with the subject and key id of
// its envelope if binarize/shred protected it (the ciphertext is never
// shown); as "empty"; otherwise as hex ("hex").
//
// Errors go to stderr as "esctl <command>: ..." naming what was wrong.
// Exit codes: 0 success, 1 the command failed, 2 a wrong command line.
// Every command but follow gives up after --timeout (default 30s).
//
// # Projections
//
// An offset store knows projection names and offsets, not the types a
// projection reads, so lag needs --type (or --all-types): the number of
// events of those types after the offset, read from the log and counted up
// to --lag-limit (then shown as ">=N"); a slice counts only the events of
// its slice (projection.SliceOf).
//
// set-offset, reset and skip are safe only while the projection is
// stopped in every process. Each is one compare-and-set through the
// store's Commit from the offset esctl read, as Projection.SetOffset does:
// a runner that moves the offset meanwhile makes it fail, but one that
// starts afterwards carries on from the new offset. reset does not clear
// the read model: a rebuild is the application's Projection.Reset.
//
// pause, resume and retry-dead-letter write the projection's control
// record in the offset store (projection.Pause, Resume, RequestRetry; the
// table or bucket --pg-control-table or --nats-control-bucket names, which
// the application's pgprojection.Store.Migrate or natsprojection.New
// creates). The running projection reads it every control interval (1 s
// by default, projection.WithControlInterval): a paused projection stops
// handling events, wherever it runs, until it is resumed; a retry request
// makes its runner handle the dead letter's event again with its own
// handler (exactly once on pgprojection) and drop it, or record the new
// failure. esctl checks that the dead letter exists before asking.
//
// # Follow and copy
//
// follow reads one type with Subscribe, several or all with
// eventlog.AllReader's SubscribeAll, after the log's highest Position
// when it starts (or --after), and ends on SIGINT or SIGTERM with exit 0.
// copy runs logcopy.Copy for --type or every type of the source; with
// --checkpoint FILE (logcopy.FileCheckpoints) an interrupted copy resumes
// when run again, and a finished one appends nothing.
package main

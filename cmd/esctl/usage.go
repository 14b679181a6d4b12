package main

// usage is what 'esctl help' prints; doc.go says the same at more length.
const usage = `esctl: operate eventsourced-go event logs, projections and dead letters.

usage: esctl <command> [flags] [arguments]

Reading the log:
  types                         list the entity types
  ids <type>                    list the ids of a type
  events <type> <id>            show an entity's events (--from SEQ)
  follow                        print events as they commit, until Ctrl-C
                                (--type T..., --all-types, --after POS)
Projections (offsets and dead letters in pgprojection or natsprojection stores):
  projections [name...]         list offsets and slices, with lag (--type T... or --all-types)
  set-offset <name> <position>  move a stopped projection's offset
  reset <name>                  set a stopped projection's offset to 0 (read model NOT cleared)
  skip <name>                   move a stopped projection's offset past its next --count events
  dead-letters [name...]        list dead letters
  drop-dead-letter <name> <pos> delete a dead letter
  retry-dead-letter <name> <pos> ask the projection's runners to retry a dead letter
  pause <name>                  pause a projection (or slice) wherever it runs
  resume <name>                 resume it
Copying:
  copy                          copy the log to another (--to-pg-dsn or --to-nats-url,
                                --type T..., --checkpoint FILE, --setup)

Backend (exactly one; flags win over the environment):
  --pg-dsn DSN (or $EVENTSOURCED_POSTGRES_DSN)  --pg-schema  --pg-table-prefix
      --pg-offsets-table  --pg-dead-letter-table  --pg-control-table
  --nats-url URL (or $NATS_URL)  --nats-creds  --nats-stream  --nats-prefix
      --nats-offsets-bucket  --nats-dead-letter-bucket
Every command takes --json (one JSON object per line) and --timeout.
set-offset, reset and skip are safe only while the projection is stopped in
every process: they compare-and-set the offset through the store's Commit.

Run 'esctl help <command>' for a command's flags.
`

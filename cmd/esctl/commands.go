package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/logcopy"
	"github.com/eventsourced-go/eventsourced/projection"
)

var commands = []*command{
	{name: "types", summary: "List the entity types that have events, sorted.", flags: cmdTypes},
	{name: "ids", args: "<type>", summary: "List the ids of the entities of a type, sorted.", flags: cmdIDs},
	{name: "events", args: "<type> <id>", summary: "Show an entity's events with their metadata. Bodies are shown as JSON when\nthey are JSON or msgpack, as hex otherwise, and data protected by\nbinarize/shred as \"encrypted\" with its subject and key id only.", flags: cmdEvents},
	{name: "follow", summary: "Print events of one type, several, or all types as they are committed,\nuntil interrupted (Ctrl-C). Starts at the log's current end unless --after.", flags: cmdFollow, live: true},
	{name: "projections", args: "[name...]", summary: "List the projections (and slices, \"name[i/n]\") whose offsets the offset\nstore holds, with their lag: the events of --type (or --all-types) after\nthe offset, counted up to --lag-limit; a slice counts its own events only.\nNames filter the list: a projection and its slices.", flags: cmdProjections},
	{name: "set-offset", args: "<projection> <position>", summary: "Move a projection's (or slice's) stored offset to a Position: ahead to\nskip events, back to handle them again. Only while the projection is\nstopped in every process: the move is a compare-and-set through the\nstore's Commit, so a runner that moves the offset meanwhile makes it\nfail, but a runner that starts later carries on from the new offset\nover a read model that was not changed.", flags: cmdSetOffset},
	{name: "reset", args: "<projection>", summary: "Set a projection's stored offset to 0, so that it handles every event\nagain when it next starts. The read model is NOT cleared: use the\napplication's Projection.Reset for a rebuild. Only while the projection\nis stopped in every process (see set-offset).", flags: cmdReset},
	{name: "skip", args: "<projection>", summary: "Move a stopped projection's offset past its next --count events of\n--type (or --all-types): the way past a poison event. Only while the\nprojection is stopped in every process (see set-offset).", flags: cmdSkip},
	{name: "dead-letters", args: "[projection...]", summary: "List dead letters: of the projections named, or of every projection the\noffset store holds.", flags: cmdDeadLetters},
	{name: "drop-dead-letter", args: "<projection> <position>", summary: "Delete a dead letter without handling its event.", flags: cmdDropDeadLetter},
	{name: "retry-dead-letter", args: "<projection> <position>", summary: "Ask the runners of the projection to retry a dead letter: the one that\nruns it handles the event again within its control interval (1 s by\ndefault) and drops the dead letter if the handler succeeds, or records the\nnew failure (projection.RequestRetry). Exactly once on pgprojection.", flags: cmdRetryDeadLetter},
	{name: "pause", args: "<projection>", summary: "Pause a projection (or one slice, \"name[i/n]\") wherever it runs: its\nrunners stop handling events within their control interval (1 s by\ndefault) and report the paused state, until resume (projection.Pause).", flags: cmdControl(true)},
	{name: "resume", args: "<projection>", summary: "Resume a paused projection (projection.Resume).", flags: cmdControl(false)},
	{name: "copy", summary: "Copy the log's entity types (--type, default all) to the target log\n(--to-*) with logcopy: each stream at its own Seqs, verified. With\n--checkpoint an interrupted copy resumes where it stopped.", flags: cmdCopy},
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// cmdControl is pause (true) or resume (false).
func cmdControl(pause bool) func(*flag.FlagSet, *cli) func(context.Context, []string) error {
	return func(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			if err := wantArgs(args, 1, "<projection>"); err != nil {
				return err
			}
			return c.withLog(ctx, func(b *backend) error {
				ctl, err := b.controls(ctx)
				if err != nil {
					return err
				}
				verb := "resumed"
				if pause {
					verb = "paused"
					err = projection.Pause(ctx, ctl, args[0])
				} else {
					err = projection.Resume(ctx, ctl, args[0])
				}
				if err != nil {
					return err
				}
				if c.json {
					return c.emit(struct {
						Projection string `json:"projection"`
						Paused     bool   `json:"paused"`
					}{args[0], pause})
				}
				c.printf("%s: %s (its runners follow within their control interval)\n", word(args[0]), verb)
				return nil
			})
		}
	}
}

// withDeadLetter parses "<projection> <position>" and runs f with the
// backend's dead-letter store.
func (c *cli) withDeadLetter(ctx context.Context, args []string, f func(b *backend, dl projection.DeadLetters, pos uint64) error) error {
	if err := wantArgs(args, 2, "<projection> <position>"); err != nil {
		return err
	}
	pos, err := position("position", args[1])
	if err != nil {
		return err
	}
	return c.withLog(ctx, func(b *backend) error {
		dl, err := b.deadLetters(ctx)
		if err != nil {
			return err
		}
		return f(b, dl, pos)
	})
}

func cmdRetryDeadLetter(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		return c.withDeadLetter(ctx, args, func(b *backend, dl projection.DeadLetters, pos uint64) error {
			if _, err := dl.Get(ctx, args[0], pos); err != nil {
				return err // names the projection and position when there is none
			}
			ctl, err := b.controls(ctx)
			if err != nil {
				return err
			}
			if err := projection.RequestRetry(ctx, ctl, args[0], pos); err != nil {
				return err
			}
			if c.json {
				return c.emit(struct {
					Projection string `json:"projection"`
					Position   uint64 `json:"position"`
					Requested  bool   `json:"retry_requested"`
				}{args[0], pos, true})
			}
			c.printf("%s: retry of the dead letter at position %d requested\n", word(args[0]), pos)
			return nil
		})
	}
}

// withLog opens the backend and runs f, then closes it.
func (c *cli) withLog(ctx context.Context, f func(b *backend) error) error {
	b, err := c.conn.open(ctx, false)
	defer b.close()
	if err != nil {
		return err
	}
	return f(b)
}

func cmdTypes(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 0, "none"); err != nil {
			return err
		}
		return c.withLog(ctx, func(b *backend) error {
			tl, ok := b.log.(eventlog.TypeLister)
			if !ok {
				return fmt.Errorf("the %s log cannot list its types", b.name)
			}
			types, err := collectSorted(tl.EntityTypes(ctx))
			if err != nil {
				return err
			}
			for _, t := range types {
				if c.json {
					if err := c.emit(map[string]string{"type": t}); err != nil {
						return err
					}
				} else {
					c.printf("%s\n", word(t))
				}
			}
			return nil
		})
	}
}

func cmdIDs(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 1, "<type>"); err != nil {
			return err
		}
		return c.withLog(ctx, func(b *backend) error {
			il, ok := b.log.(eventlog.IDLister)
			if !ok {
				return fmt.Errorf("the %s log cannot list ids", b.name)
			}
			ids, err := collectSorted(il.EntityIDs(ctx, args[0]))
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				fmt.Fprintf(c.stderr, "esctl ids: no entity of type %s\n", word(args[0]))
			}
			for _, id := range ids {
				if c.json {
					if err := c.emit(map[string]string{"type": args[0], "id": id}); err != nil {
						return err
					}
				} else {
					c.printf("%s\n", word(id))
				}
			}
			return nil
		})
	}
}

func collectSorted(seq iter.Seq2[string, error]) ([]string, error) {
	var out []string
	for s, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// eventOut is an event in JSON output.
type eventOut struct {
	Type     string            `json:"type"`
	ID       string            `json:"id"`
	Seq      uint64            `json:"seq"`
	Position uint64            `json:"position"`
	Time     time.Time         `json:"time"`
	Name     string            `json:"name"`
	Revision uint32            `json:"revision"`
	Encoding string            `json:"encoding"`
	Data     any               `json:"data"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func toEventOut(r eventlog.Record) eventOut {
	b := decodeBody(r.Data)
	return eventOut{Type: r.EntityType, ID: r.EntityID, Seq: r.Seq, Position: r.Position, Time: r.Time.UTC(),
		Name: r.Name, Revision: r.Revision, Encoding: b.Encoding, Data: b.Value, Metadata: r.Metadata}
}

// printEvent prints r as one line of text or JSON.
func (c *cli) printEvent(r eventlog.Record) error {
	if c.json {
		return c.emit(toEventOut(r))
	}
	c.printf("%s/%s seq=%d pos=%d time=%s name=%s rev=%d data=%s%s\n", word(r.EntityType), word(r.EntityID),
		r.Seq, r.Position, textTime(r.Time), word(r.Name), r.Revision, decodeBody(r.Data), metadataText(r.Metadata))
	return nil
}

func metadataText(md map[string]string) string {
	if len(md) == 0 {
		return ""
	}
	var s string
	for _, k := range slices.Sorted(mapsKeys(md)) {
		s += fmt.Sprintf(" meta.%s=%s", word(k), word(md[k]))
	}
	return s
}

func mapsKeys(m map[string]string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func cmdEvents(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	from := fs.Uint64("from", 1, "first Seq to show")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 2, "<type> <id>"); err != nil {
			return err
		}
		typ, id := args[0], args[1]
		return c.withLog(ctx, func(b *backend) error {
			n := 0
			for r, err := range b.log.ReadEntity(ctx, typ, id, *from) {
				if err != nil {
					return err
				}
				n++
				if err := c.printEvent(r); err != nil {
					return err
				}
			}
			if n == 0 {
				last, err := b.log.LastSeq(ctx, typ, id)
				if err != nil {
					return err
				}
				if last == 0 {
					return fmt.Errorf("no entity %s/%s", word(typ), word(id))
				}
				fmt.Fprintf(c.stderr, "esctl events: %s/%s has no readable event from seq %d (last seq %d)\n", word(typ), word(id), *from, last)
			}
			return nil
		})
	}
}

// typeFlags are the --type and --all-types flags of the commands that
// read events of a set of types.
type typeFlags struct {
	types strs
	all   *bool
}

func addTypeFlags(fs *flag.FlagSet, what string) *typeFlags {
	t := &typeFlags{}
	fs.Var(&t.types, "type", "entity type "+what+" (repeatable, or comma-separated)")
	t.all = fs.Bool("all-types", false, "every entity type "+what)
	return t
}

// given reports whether --type or --all-types was given, and refuses both.
func (t *typeFlags) given() (bool, error) {
	if len(t.types) > 0 && *t.all {
		return false, usagef("--type and --all-types together")
	}
	return len(t.types) > 0 || *t.all, nil
}

// read yields the events of the types after a Position, finite or live.
func (t *typeFlags) read(ctx context.Context, log eventlog.Log, after uint64, live bool) iter.Seq2[eventlog.Record, error] {
	if len(t.types) == 1 {
		if live {
			return log.Subscribe(ctx, t.types[0], after)
		}
		return log.ReadType(ctx, t.types[0], after)
	}
	ar, ok := log.(eventlog.AllReader)
	if !ok {
		return func(yield func(eventlog.Record, error) bool) {
			yield(eventlog.Record{}, errors.New("this log cannot read several types in one order; give one --type"))
		}
	}
	if live {
		return ar.SubscribeAll(ctx, after, t.types...)
	}
	return ar.ReadAll(ctx, after, t.types...)
}

func cmdFollow(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	tf := addTypeFlags(fs, "to follow (default: every type)")
	after := fs.String("after", "end", `start after this Position ("0" for the beginning; default: the log's current end)`)
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 0, "none"); err != nil {
			return err
		}
		if _, err := tf.given(); err != nil {
			return err
		}
		return c.withLog(ctx, func(b *backend) error {
			var pos uint64
			if *after == "end" {
				var err error
				if pos, err = b.head(ctx); err != nil {
					return err
				}
			} else {
				var err error
				if pos, err = position("--after", *after); err != nil {
					return err
				}
			}
			fmt.Fprintf(c.stderr, "esctl follow: following after position %d; Ctrl-C ends\n", pos)
			for r, err := range tf.read(ctx, b.log, pos, true) {
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted: the normal end
					}
					return err
				}
				if err := c.printEvent(r); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// sliceRe matches the names projection.SliceName makes.
var sliceRe = regexp.MustCompile(`^(.*)\[(\d+)/(\d+)\]$`)

// parseSlice returns the projection name and slice of a stored name;
// n is 0 for a projection that is not sliced.
func parseSlice(name string) (base string, i, n int) {
	m := sliceRe.FindStringSubmatch(name)
	if m == nil {
		return name, 0, 0
	}
	i, err1 := strconv.Atoi(m[2])
	n, err2 := strconv.Atoi(m[3])
	if err1 != nil || err2 != nil || n < 1 || i >= n {
		return name, 0, 0
	}
	return m[1], i, n
}

// mine returns the filter of the events a stored name handles: those of
// its slice.
func mine(name string) func(r eventlog.Record) bool {
	_, i, n := parseSlice(name)
	return func(r eventlog.Record) bool { return n == 0 || projection.SliceOf(r.EntityType, r.EntityID, n) == i }
}

// projOut is a projection in JSON output.
type projOut struct {
	Name       string     `json:"name"`
	Projection string     `json:"projection"`
	Slice      *sliceOut  `json:"slice"`
	Offset     uint64     `json:"offset"`
	Lag        *uint64    `json:"lag"`
	LagAtLeast bool       `json:"lag_at_least,omitempty"`
	Updated    *time.Time `json:"updated"`
}

type sliceOut struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// matches reports whether a stored name is one of the names asked for, or
// a slice of one.
func matches(name string, want []string) bool {
	if len(want) == 0 {
		return true
	}
	base, _, _ := parseSlice(name)
	return slices.Contains(want, name) || slices.Contains(want, base)
}

func cmdProjections(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	tf := addTypeFlags(fs, "the projections read, to count their lag")
	limit := fs.Uint64("lag-limit", 100_000, "count at most this many events of lag per projection")
	return func(ctx context.Context, args []string) error {
		withLag, err := tf.given()
		if err != nil {
			return err
		}
		return c.withLog(ctx, func(b *backend) error {
			store, err := b.offsets(ctx)
			if err != nil {
				return err
			}
			offs, err := store.Offsets(ctx)
			if err != nil {
				return err
			}
			var rows []projOut
			for _, o := range offs {
				if !matches(o.Name, args) {
					continue
				}
				base, i, n := parseSlice(o.Name)
				row := projOut{Name: o.Name, Projection: base, Offset: o.Position}
				if n > 0 {
					row.Slice = &sliceOut{Index: i, Count: n}
				}
				if !o.Updated.IsZero() {
					u := o.Updated.UTC()
					row.Updated = &u
				}
				if withLag {
					lag, capped, err := countAfter(ctx, tf, b.log, o.Position, mine(o.Name), *limit)
					if err != nil {
						return fmt.Errorf("lag of %s: %w", o.Name, err)
					}
					row.Lag, row.LagAtLeast = &lag, capped
				}
				rows = append(rows, row)
			}
			if len(rows) == 0 && len(args) > 0 {
				return fmt.Errorf("no stored offset for %v", args)
			}
			if c.json {
				for _, r := range rows {
					if err := c.emit(r); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSLICE\tOFFSET\tLAG\tUPDATED")
			for _, r := range rows {
				slice, lag := "-", "-"
				if r.Slice != nil {
					slice = fmt.Sprintf("%d/%d", r.Slice.Index, r.Slice.Count)
				}
				if r.Lag != nil {
					lag = strconv.FormatUint(*r.Lag, 10)
					if r.LagAtLeast {
						lag = ">=" + lag
					}
				}
				updated := "-"
				if r.Updated != nil {
					updated = textTime(*r.Updated)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", word(r.Name), slice, r.Offset, lag, updated)
			}
			return tw.Flush()
		})
	}
}

// countAfter counts the events of the types after offset that keep
// accepts, up to limit; capped reports that it stopped there.
func countAfter(ctx context.Context, tf *typeFlags, log eventlog.Log, offset uint64, keep func(eventlog.Record) bool, limit uint64) (n uint64, capped bool, err error) {
	for r, err := range tf.read(ctx, log, offset, false) {
		if err != nil {
			return 0, false, err
		}
		if !keep(r) {
			continue
		}
		if n == limit {
			return n, true, nil
		}
		n++
	}
	return n, false, nil
}

// moveOffset moves the offset of name from what the store holds to pos,
// as projection.Projection.SetOffset does: one conditional Commit.
func (c *cli) moveOffset(ctx context.Context, b *backend, name string, pos func(cur uint64) (uint64, error)) error {
	store, err := b.offsets(ctx)
	if err != nil {
		return err
	}
	cur, err := store.Load(ctx, name)
	if err != nil {
		return err
	}
	to, err := pos(cur)
	if err != nil {
		return err
	}
	if to != cur {
		if err := store.Commit(ctx, name, cur, to, func(context.Context) error { return nil }); err != nil {
			if errors.Is(err, projection.ErrOffsetMoved) {
				return fmt.Errorf("%s is running somewhere (its offset moved): stop it everywhere first: %w", name, err)
			}
			return err
		}
	}
	if c.json {
		return c.emit(struct {
			Name string `json:"name"`
			From uint64 `json:"from"`
			To   uint64 `json:"to"`
		}{name, cur, to})
	}
	c.printf("%s: offset %d -> %d\n", word(name), cur, to)
	return nil
}

func cmdSetOffset(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 2, "<projection> <position>"); err != nil {
			return err
		}
		pos, err := position("position", args[1])
		if err != nil {
			return err
		}
		return c.withLog(ctx, func(b *backend) error {
			return c.moveOffset(ctx, b, args[0], func(uint64) (uint64, error) { return pos, nil })
		})
	}
}

func cmdReset(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 1, "<projection>"); err != nil {
			return err
		}
		return c.withLog(ctx, func(b *backend) error {
			return c.moveOffset(ctx, b, args[0], func(uint64) (uint64, error) { return 0, nil })
		})
	}
}

func cmdSkip(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	tf := addTypeFlags(fs, "the projection reads (required)")
	count := fs.Uint64("count", 1, "how many events to skip")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 1, "<projection>"); err != nil {
			return err
		}
		if ok, err := tf.given(); err != nil || !ok {
			if err == nil {
				err = usagef("give --type or --all-types: the offset store does not know the projection's types")
			}
			return err
		}
		if *count == 0 {
			return usagef("--count 0 skips nothing")
		}
		name := args[0]
		return c.withLog(ctx, func(b *backend) error {
			return c.moveOffset(ctx, b, name, func(cur uint64) (uint64, error) {
				keep, seen, to := mine(name), uint64(0), cur
				for r, err := range tf.read(ctx, b.log, cur, false) {
					if err != nil {
						return 0, err
					}
					if !keep(r) {
						continue
					}
					seen, to = seen+1, r.Position
					if seen == *count {
						break
					}
				}
				if seen < *count {
					return 0, fmt.Errorf("%s has %d event(s) after its offset %d, fewer than --count %d", name, seen, cur, *count)
				}
				return to, nil
			})
		})
	}
}

// deadLetterOut is a dead letter in JSON output.
type deadLetterOut struct {
	Projection string    `json:"projection"`
	Position   uint64    `json:"position"`
	Attempts   int       `json:"attempts"`
	Error      string    `json:"error"`
	Time       time.Time `json:"time"`
	Event      eventOut  `json:"event"`
}

func cmdDeadLetters(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	limit := fs.Int("limit", 0, "at most this many per projection (0: all)")
	after := fs.Uint64("after", 0, "only those with a Position above this")
	return func(ctx context.Context, args []string) error {
		return c.withLog(ctx, func(b *backend) error {
			dl, err := b.deadLetters(ctx)
			if err != nil {
				return err
			}
			names := args
			if len(names) == 0 {
				store, err := b.offsets(ctx)
				if err != nil {
					return fmt.Errorf("listing the projections (name them instead): %w", err)
				}
				offs, err := store.Offsets(ctx)
				if err != nil {
					return err
				}
				for _, o := range offs {
					names = append(names, o.Name)
				}
			}
			for _, name := range names {
				ds, err := dl.List(ctx, name, *after, *limit)
				if err != nil {
					return err
				}
				slices.SortFunc(ds, func(a, b projection.DeadLetter) int { return cmp.Compare(a.Record.Position, b.Record.Position) })
				for _, d := range ds {
					if c.json {
						if err := c.emit(deadLetterOut{Projection: d.Projection, Position: d.Record.Position, Attempts: d.Attempts,
							Error: d.Err, Time: d.Time.UTC(), Event: toEventOut(d.Record)}); err != nil {
							return err
						}
						continue
					}
					r := d.Record
					c.printf("%s pos=%d attempts=%d time=%s error=%s event=%s/%s seq=%d name=%s rev=%d data=%s%s\n",
						word(d.Projection), r.Position, d.Attempts, textTime(d.Time), strconv.Quote(d.Err),
						word(r.EntityType), word(r.EntityID), r.Seq, word(r.Name), r.Revision, decodeBody(r.Data), metadataText(r.Metadata))
				}
			}
			return nil
		})
	}
}

func cmdDropDeadLetter(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		return c.withDeadLetter(ctx, args, func(b *backend, dl projection.DeadLetters, pos uint64) error {
			if err := dl.Drop(ctx, args[0], pos); err != nil {
				return err
			}
			if c.json {
				return c.emit(struct {
					Projection string `json:"projection"`
					Position   uint64 `json:"position"`
					Dropped    bool   `json:"dropped"`
				}{args[0], pos, true})
			}
			c.printf("%s: dropped the dead letter at position %d\n", word(args[0]), pos)
			return nil
		})
	}
}

func cmdCopy(fs *flag.FlagSet, c *cli) func(context.Context, []string) error {
	var to connFlags
	to.register(fs, "to-")
	var types strs
	fs.Var(&types, "type", "entity type to copy (repeatable, or comma-separated; default: every type)")
	checkpoint := fs.String("checkpoint", "", "file that records progress, so that a copy run again resumes")
	setup := fs.Bool("setup", false, "create the target's tables or stream first (postgreslog.Setup, natslog.Setup)")
	existing := fs.Bool("existing", false, "complete target streams that hold a prefix of the source's (logcopy.WithExistingTargets)")
	skipTruncated := fs.Bool("skip-truncated", false, "leave out streams whose first events were deleted (logcopy.WithSkipTruncated)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args, 0, "none"); err != nil {
			return err
		}
		return c.withLog(ctx, func(src *backend) error {
			dst, err := to.open(ctx, *setup)
			defer dst.close()
			if err != nil {
				return fmt.Errorf("target: %w", err)
			}
			if len(types) == 0 {
				tl, ok := src.log.(eventlog.TypeLister)
				if !ok {
					return usagef("the source cannot list its types; give --type")
				}
				if types, err = collectSorted(tl.EntityTypes(ctx)); err != nil {
					return err
				}
			}
			var opts []logcopy.Option
			if *checkpoint != "" {
				cps, err := logcopy.OpenFileCheckpoints(*checkpoint)
				if err != nil {
					return fmt.Errorf("--checkpoint: %w", err)
				}
				opts = append(opts, logcopy.WithCheckpoint(cps))
			}
			if *existing {
				opts = append(opts, logcopy.WithExistingTargets())
			}
			if *skipTruncated {
				opts = append(opts, logcopy.WithSkipTruncated())
			}
			st, err := logcopy.Copy(ctx, src.log, dst.log, types, opts...)
			for _, ts := range st.Types {
				if c.json {
					if err := c.emit(copyOut{ts.EntityType, ts.Position, ts.Appended, ts.Present, ts.Streams, ts.Events, len(ts.Skipped), ts.Verified}); err != nil {
						return err
					}
					continue
				}
				c.printf("%s appended=%d present=%d streams=%d events=%d skipped=%d verified=%t\n", word(ts.EntityType),
					ts.Appended, ts.Present, ts.Streams, ts.Events, len(ts.Skipped), ts.Verified)
			}
			if err != nil && *checkpoint != "" {
				fmt.Fprintf(c.stderr, "esctl copy: run it again with the same --checkpoint to resume\n")
			}
			return err
		})
	}
}

// copyOut is a copied type in JSON output.
type copyOut struct {
	Type     string `json:"type"`
	Position uint64 `json:"position"`
	Appended int64  `json:"appended"`
	Present  int64  `json:"present"`
	Streams  int64  `json:"streams"`
	Events   int64  `json:"events"`
	Skipped  int    `json:"skipped"`
	Verified bool   `json:"verified"`
}

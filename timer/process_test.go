package timer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/process"
	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/timer"
)

var _ process.Timers = (*timer.Timers)(nil)

// Rule: *timer.Timers is the timer store of a process manager: a step's
// timer is scheduled in it, its firing is recorded as a Fired event that
// the manager reads as the instance's input, and the step that reacts to
// it sends its command once.
func TestProcessManagerTimers(t *testing.T) {
	ctx := context.Background()
	log := eventlog.NewMemory()
	// The manager learns of firings from the log: the fire function has
	// nothing to do.
	sys, timers := run(t, log, projection.NewMemory(), "pm", func(context.Context, timer.Timer) error { return nil })
	tally := registerTally(t, sys)
	type state struct{ Pings int }
	m, err := process.New(sys, process.Definition[state]{
		Name:    "Echo",
		Sources: []string{"Tally"},
		Correlate: func(rec eventlog.Record) (string, bool) {
			return rec.EntityID, !strings.HasSuffix(rec.EntityID, "-echo")
		},
		Handle: func(s state, in process.Input) (state, process.Effects, error) {
			if in.Timer == nil {
				// A timer due when the event was recorded: at once.
				return s, process.Effects{Timers: []process.Timer{{Name: "ping", At: in.Record.Time, Payload: []byte("p")}}}, nil
			}
			s.Pings++
			return s, process.Effects{Commands: []process.Command{process.Send(tally.Ref(in.Instance+"-echo"), add{})}}, nil
		},
	}, projection.NewMemory(), process.WithTimers(timers))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(ctx)
	if _, err := tallyAsk(ctx, tally.Ref("t1")); err != nil {
		t.Fatal(err)
	}
	echoes := func() int {
		n := 0
		for _, err := range log.ReadEntity(ctx, "Tally", "t1-echo", 1) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	waitFor(t, "the echo", func() bool { return echoes() == 1 })
	time.Sleep(100 * time.Millisecond)
	if n, st := echoes(), timers.Status(); n != 1 || st.Recorded != 1 || st.Pending != 0 {
		t.Errorf("%d echoes, timers' status %+v; want 1 echo and 1 firing recorded, none pending", n, st)
	}
	if st := m.Stats(); st.StaleTimers != 0 {
		t.Errorf("manager stats %+v, want no stale timers", st)
	}
}

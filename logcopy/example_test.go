package logcopy_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/logcopy"
)

func Example() {
	ctx := context.Background()
	src := eventlog.NewMemory()
	src.Append(ctx, "account", "alice", 0,
		eventlog.Event{Name: "Opened", Data: []byte(`{"owner":"Alice"}`)},
		eventlog.Event{Name: "Deposited", Revision: 2, Data: []byte(`{"cents":100}`), Metadata: map[string]string{"correlation": "c-1"}})
	src.Append(ctx, "account", "bob", 0, eventlog.Event{Name: "Opened"})
	src.Append(ctx, "account", "alice", 2, eventlog.Event{Name: "Withdrawn", Data: []byte(`{"cents":30}`)})

	dst := eventlog.NewMemory()
	st, err := logcopy.Copy(ctx, src, dst, []string{"account"})
	if err != nil {
		panic(err)
	}
	fmt.Println("appended", st.Appended, "verified", st.Streams, "streams and", st.Events, "events")
	for r, err := range dst.ReadType(ctx, "account", 0) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("  %s seq %d %s rev %d %s %v\n", r.EntityID, r.Seq, r.Name, r.Revision, r.Data, r.Metadata)
	}

	// A second copy into the same target, without the first one's
	// checkpoint, finds its streams taken.
	_, err = logcopy.Copy(ctx, src, dst, []string{"account"})
	var full *logcopy.TargetNotEmptyError
	if errors.As(err, &full) {
		fmt.Println(errors.Is(err, logcopy.ErrTargetNotEmpty), full.EntityID, "seq", full.Seq, "target last seq", full.TargetLastSeq)
	}

	// Allowed to find them, it checks that they are the source's.
	st, err = logcopy.Copy(ctx, src, dst, []string{"account"}, logcopy.WithExistingTargets())
	fmt.Println("appended", st.Appended, "present", st.Present, "error", err)
	// Output:
	// appended 4 verified 2 streams and 4 events
	//   alice seq 1 Opened rev 0 {"owner":"Alice"} map[]
	//   alice seq 2 Deposited rev 2 {"cents":100} map[correlation:c-1]
	//   bob seq 1 Opened rev 0  map[]
	//   alice seq 3 Withdrawn rev 0 {"cents":30} map[]
	// true alice seq 1 target last seq 3
	// appended 0 present 4 error <nil>
}

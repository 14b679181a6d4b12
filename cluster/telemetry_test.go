package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	testprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/telemetrytest"
)

// startObservedNodes starts two members sharing log, each with its own
// tracer and meter provider, so each span and measurement says which
// member made it.
// observed is what the SDK's test helpers record of one member's spans and
// metrics.
type observed = telemetrytest.Observed

// spanAttr returns s's attribute key as a string, "" if it has none.
func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	if v := telemetrytest.Attr(s, key); v.Type() != attribute.INVALID {
		return v.Emit()
	}
	return ""
}

func startObservedNodes(t *testing.T, log eventlog.Log) ([]node, []*observed) {
	agent := testprovider.NewInMemAgent()
	var nodes []node
	var obs []*observed
	var members []*cluster.Member
	for range 2 {
		o := telemetrytest.New(t)
		n := newNode(t, "test", log, testprovider.NewTestProvider(agent),
			cluster.WithTracerProvider(o.TP), cluster.WithMeterProvider(o.MP))
		nodes, obs, members = append(nodes, n), append(obs, o), append(members, n.m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cluster.StartAll(ctx, members...); err != nil {
		t.Fatalf("StartAll: %v", err)
	}
	t.Cleanup(func() { shutdownAll(t, nodes) })
	return nodes, obs
}

// ownedBy returns an id of a Tally that member owns.
func ownedBy(t testing.TB, nodes []node, member int) string {
	for i := range 1000 {
		id := fmt.Sprintf("t-%d", i)
		if nodes[0].m.Owner("Tally", id) == nodes[member].m.Address() {
			return id
		}
	}
	t.Fatalf("no id of the first 1000 is owned by member %d", member)
	return ""
}

// A command asked on member A inside a caller's span, for an entity that
// member B owns, is one trace: A's client span is the caller's child, and
// B's command span (from B's entity system) is the client span's child,
// its parent read from the envelope; B's events carry B's command span.
// A's metrics count the remote request and its message; B's the command.
// A command A owns itself runs in process, its command span the client
// span's child too.
func TestTelemetryTraceCrossesMembers(t *testing.T) {
	log := eventlog.NewMemory()
	nodes, obs := startObservedNodes(t, log)
	a, b := obs[0], obs[1]
	remoteID, localID := ownedBy(t, nodes, 1), ownedBy(t, nodes, 0)

	ctx, caller := a.TP.Tracer("test").Start(context.Background(), "HTTP POST /tallies")
	if _, err := cluster.Ask(ctx, nodes[0].k.Ref(remoteID), Add{Op: "r", N: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Ask(ctx, nodes[0].k.Ref(localID), Add{Op: "l", N: 1}); err != nil {
		t.Fatal(err)
	}
	caller.End()

	clients := a.Named("Tally add")
	if len(clients) != 2 {
		t.Fatalf("%d client spans on A, want 2", len(clients))
	}
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, c := range clients {
		byID[spanAttr(c, "eventsourced.entity.id")] = c
		if c.SpanKind() != trace.SpanKindClient || c.Parent().SpanID() != caller.SpanContext().SpanID() {
			t.Errorf("client span: kind %v, parent %s; want client, the caller's child", c.SpanKind(), c.Parent().SpanID())
		}
		if spanAttr(c, "eventsourced.entity.type") != "Tally" || spanAttr(c, "eventsourced.command") != "add" {
			t.Errorf("client span attributes %v", c.Attributes())
		}
	}
	remote, local := byID[remoteID], byID[localID]
	if remote == nil || local == nil {
		t.Fatalf("client spans for ids %v, want %s and %s", byID, remoteID, localID)
	}
	if got := spanAttr(remote, "eventsourced.member"); got != nodes[1].m.Address() {
		t.Errorf("remote client span: member %q, want the owner %s", got, nodes[1].m.Address())
	}

	cmds := b.Named("Tally Add")
	if len(cmds) != 1 {
		t.Fatalf("%d command spans on B, want 1", len(cmds))
	}
	cmd := cmds[0]
	if cmd.SpanContext().TraceID() != caller.SpanContext().TraceID() {
		t.Errorf("B's command span in trace %s, want the caller's %s", cmd.SpanContext().TraceID(), caller.SpanContext().TraceID())
	}
	if p := cmd.Parent(); p.SpanID() != remote.SpanContext().SpanID() || !p.IsRemote() {
		t.Errorf("B's command span: parent %s (remote %t), want A's client span %s, remote", p.SpanID(), p.IsRemote(), remote.SpanContext().SpanID())
	}
	for rec, err := range log.ReadEntity(context.Background(), "Tally", remoteID, 1) {
		if err != nil {
			t.Fatal(err)
		}
		want := "00-" + cmd.SpanContext().TraceID().String() + "-" + cmd.SpanContext().SpanID().String() + "-01"
		if got := rec.Metadata["traceparent"]; got != want {
			t.Errorf("B's event: traceparent %q, want B's command span %q", got, want)
		}
	}

	locals := a.Named("Tally Add")
	if len(locals) != 1 || locals[0].Parent().SpanID() != local.SpanContext().SpanID() {
		t.Errorf("A's command spans %d; want one, the local client span's child", len(locals))
	}

	requests, ok := a.Metric(t, "eventsourced.cluster.requests").(metricdata.Sum[int64])
	if !ok || len(requests.DataPoints) != 1 {
		t.Fatalf("A's cluster.requests: %+v, want one data point", requests)
	}
	dp := requests.DataPoints[0]
	if out, _ := dp.Attributes.Value("eventsourced.outcome"); dp.Value != 1 || out.AsString() != "ok" {
		t.Errorf("A's cluster.requests: %d with %v, want 1 ok", dp.Value, dp.Attributes)
	}
	if h, ok := a.Metric(t, "eventsourced.cluster.request.duration").(metricdata.Histogram[float64]); !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Count != 1 {
		t.Errorf("A's cluster.request.duration: %+v, want one request", h)
	}
	if h, ok := a.Metric(t, "eventsourced.cluster.message.commands").(metricdata.Histogram[int64]); !ok || len(h.DataPoints) != 1 || h.DataPoints[0].Sum != 1 {
		t.Errorf("A's cluster.message.commands: %+v, want one message of one command", h)
	}
	if b.Metric(t, "eventsourced.cluster.requests") != nil {
		t.Error("B counts remote requests, but it sent none")
	}
	if st := nodes[0].m.Stats(); st.Messages != 1 || st.Remote != 1 {
		t.Errorf("A's Stats %+v, want 1 message of 1 command", st)
	}
	if m, ok := b.Metric(t, "eventsourced.commands").(metricdata.Sum[int64]); !ok || len(m.DataPoints) != 1 || m.DataPoints[0].Value != 1 {
		t.Errorf("B's entity system eventsourced.commands: %+v, want 1 (its provider is the member's)", m)
	}
}

// records is a slog handler that keeps the records it gets.
type records struct {
	mu   sync.Mutex // guards recs
	recs []string
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	h.recs = append(h.recs, s)
	return nil
}

func (h *records) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.recs)
}

// A healthy cluster logs nothing: not per command, not when a member
// leaves gracefully (protoactor-go's Info records and the Error it logs
// for the connection it closes to the member that left are dropped), and
// nothing of protoactor-go's once the member shuts down.
func TestHealthyClusterLogsNothing(t *testing.T) {
	log := eventlog.NewMemory()
	agent := testprovider.NewInMemAgent()
	var nodes []node
	var logs []*records
	for range 2 {
		h := &records{}
		nodes = append(nodes, newNode(t, "test", log, testprovider.NewTestProvider(agent), cluster.WithLogger(slog.New(h))))
		logs = append(logs, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cluster.StartAll(ctx, nodes[0].m, nodes[1].m); err != nil {
		t.Fatalf("StartAll: %v", err)
	}
	t.Cleanup(func() { shutdownAll(t, nodes) })
	for i := range 20 {
		for _, n := range nodes {
			if _, err := cluster.Ask(ctx, n.k.Ref(fmt.Sprint("h-", i)), Add{Op: fmt.Sprint(i), N: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := nodes[0].m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The member that stays goes on serving the entities.
	for i := range 20 {
		if _, err := cluster.Ask(ctx, nodes[1].k.Ref(fmt.Sprint("h-", i)), Add{Op: fmt.Sprint("after-", i), N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range logs {
		if got := h.get(); len(got) != 0 {
			t.Errorf("member %d logged %d records, want none:\n%s", i, len(got), strings.Join(got, "\n"))
		}
	}
}

func TestTelemetryOptionsRefuseNil(t *testing.T) {
	provider := testprovider.NewTestProvider(testprovider.NewInMemAgent())
	for name, opt := range map[string]cluster.Option{
		"WithTracerProvider(nil)": cluster.WithTracerProvider(nil),
		"WithMeterProvider(nil)":  cluster.WithMeterProvider(nil),
		"WithPropagator(nil)":     cluster.WithPropagator(nil),
		"WithLogger(nil)":         cluster.WithLogger(nil),
	} {
		if _, err := cluster.NewMember("test", eventlog.NewMemory(), provider, opt); !errors.Is(err, cluster.ErrInvalid) {
			t.Errorf("NewMember with %s: %v, want ErrInvalid", name, err)
		}
	}
}

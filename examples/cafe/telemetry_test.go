package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/projection"
)

// TestTelemetry serves one App measured by an SDK of its own (spans in
// memory, metrics in a fresh Prometheus registry; no global provider),
// opens a tab through the API, and checks the trace a user sees and the
// command counter on /metrics.
func TestTelemetry(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	// A simple span processor exports each span as it ends: what the test
	// reads is complete once the spans have ended.
	tel, err := newTelemetry(resource.Empty(), sdktrace.NewSimpleSpanProcessor(spans))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tel.shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	log := eventlog.NewMemory()
	defer log.Close()
	app, err := NewApp(backend{log: log, offsets: projection.NewMemory(), docs: newMemDocs()}, slog.New(slog.DiscardHandler), tel)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := app.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	// The server span ends when the handler returns, which can be after
	// the client has its answer: served says when it has.
	h := app.Handler()
	served := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		served <- struct{}{}
	}))
	defer srv.Close()

	var open struct {
		TabID string `json:"tab_id"`
	}
	mustStatus(t, "open tab", call(t, "POST", srv.URL+"/tabs", map[string]any{"table_number": 3, "waiter": "Derek"}, &open), 201)
	<-served

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byName[s.Name] = s
	}
	span := func(name string) tracetest.SpanStub {
		t.Helper()
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q; spans: %v", name, names(spans.GetSpans()))
		}
		return s
	}
	httpSpan, command, appendSpan := span("POST /tabs"), span("Tab OpenTab"), span("append Tab")
	if httpSpan.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q is of kind %v, want server", httpSpan.Name, httpSpan.SpanKind)
	}
	if got, want := command.Parent.SpanID(), httpSpan.SpanContext.SpanID(); got != want {
		t.Errorf("parent of the command span is %v, want the HTTP server span %v", got, want)
	}
	if got, want := appendSpan.Parent.SpanID(), command.SpanContext.SpanID(); got != want {
		t.Errorf("parent of the append span is %v, want the command span %v (inline command)", got, want)
	}
	if len(appendSpan.Links) != 0 {
		t.Errorf("append span of one inline command has links %v, want none", appendSpan.Links)
	}
	traceID := httpSpan.SpanContext.TraceID()
	for _, s := range []tracetest.SpanStub{command, appendSpan} {
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %q in trace %v, want the request's %v", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	if got := attr(command, "eventsourced.entity.id"); got != open.TabID {
		t.Errorf("command span eventsourced.entity.id = %q, want %q", got, open.TabID)
	}
	// The projections continue the trace from the events' metadata.
	events := 0
	for r, err := range log.ReadEntity(context.Background(), TabTypeName, open.TabID, 1) {
		if err != nil {
			t.Fatal(err)
		}
		events++
		want := "00-" + traceID.String() + "-" + command.SpanContext.SpanID().String() + "-01"
		if got := r.Metadata["traceparent"]; got != want {
			t.Errorf("event %d traceparent %q, want %q (the command span's)", r.Seq, got, want)
		}
	}
	if events != 1 {
		t.Errorf("%d events stored for the tab, want 1 (TabOpened)", events)
	}
	// Each projection handles the event in a span of the same trace, a
	// child of the command span whose trace context the event carries.
	for _, name := range []string{"projection " + OpenTabsKind, "projection " + ChefTodoKind} {
		deadline := time.Now().Add(10 * time.Second)
		var found *tracetest.SpanStub
		for found == nil && time.Now().Before(deadline) {
			for _, s := range spans.GetSpans() {
				if s.Name == name && s.SpanContext.TraceID() == traceID {
					found = &s
					break
				}
			}
			if found == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if found == nil {
			t.Errorf("no span %q in the request's trace; spans: %v", name, names(spans.GetSpans()))
			continue
		}
		if got, want := found.Parent.SpanID(), command.SpanContext.SpanID(); got != want {
			t.Errorf("parent of %q is %v, want the command span %v", name, got, want)
		}
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-served
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	const metric = "eventsourced_commands_total{"
	want := []string{`eventsourced_entity_type="Tab"`, `eventsourced_outcome="ok"`}
	found := false
	for sc := bufio.NewScanner(strings.NewReader(string(body))); sc.Scan(); {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) || !strings.Contains(line, want[0]) || !strings.Contains(line, want[1]) {
			continue
		}
		found = true
		if !strings.HasSuffix(line, "} 1") {
			t.Errorf("GET /metrics: %s, want the count 1", line)
		}
	}
	if !found {
		t.Errorf("GET /metrics has no %s...} with %s; got:\n%s", metric, strings.Join(want, " and "), body)
	}
	if !strings.Contains(string(body), "\nhttp_server_request_duration_seconds_count{") {
		t.Errorf("GET /metrics has no http_server_request_duration_seconds; got:\n%s", body)
	}
	for _, s := range spans.GetSpans() {
		if strings.Contains(s.Name, "/metrics") {
			t.Errorf("span %q: a scrape is no request worth a trace", s.Name)
		}
	}
}

// TestOTLP checks that -otlp sends the spans to the collector it names,
// host:port or a URL, by the time the telemetry is shut down. The
// collector is a test server on loopback.
func TestOTLP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint func(srv string) string
	}{
		{"host:port", func(srv string) string { return strings.TrimPrefix(srv, "http://") }},
		{"URL", func(srv string) string { return srv + "/v1/traces" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan []string, 1)
			collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				var req coltrace.ExportTraceServiceRequest
				if err == nil {
					err = proto.Unmarshal(body, &req)
				}
				if r.Method != "POST" || r.URL.Path != "/v1/traces" || err != nil {
					t.Errorf("collector got %s %s: %v", r.Method, r.URL.Path, err)
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				var names []string
				for _, rs := range req.ResourceSpans {
					for _, ss := range rs.ScopeSpans {
						for _, s := range ss.Spans {
							names = append(names, s.Name)
						}
					}
				}
				select {
				case got <- names:
				default:
					t.Errorf("collector got a second export: %q", names)
				}
				w.Header().Set("Content-Type", "application/x-protobuf")
			}))
			defer collector.Close()

			ctx := context.Background()
			tel, err := openTelemetry(ctx, tc.endpoint(collector.URL))
			if err != nil {
				t.Fatal(err)
			}
			if !tel.tracing {
				t.Fatal("-otlp set and nothing traced")
			}
			_, span := tel.tracerProvider.Tracer("test").Start(ctx, "Tab OpenTab")
			span.End()
			if err := tel.shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case names := <-got:
				if len(names) != 1 || names[0] != "Tab OpenTab" {
					t.Errorf("collector got spans %q, want [Tab OpenTab]", names)
				}
			default:
				t.Error("shutdown returned and the collector got no spans")
			}
		})
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// attr returns the string value of s's attribute key.
func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

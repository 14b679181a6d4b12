package natslog_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/natslog"
)

// staleAPI is a JetStream API prefix, FAKE.API, whose requests a
// subscriber forwards to the server's $JS.API, except the direct gets of
// the last message of the subjects it froze, which it answers with the
// reply it had when it froze them: what a follower of a replicated stream
// that is behind the leader answers. The server still checks appends
// against what it holds, as a stream's leader does.
type staleAPI struct {
	nc     *nats.Conn
	mu     sync.Mutex           // guards frozen
	frozen map[string]*nats.Msg // $JS.API subject -> the reply it keeps giving
	served atomic.Int64         // frozen replies given
}

const staleAPIPrefix = "FAKE.API."

func newStaleAPI(t *testing.T, srv *natslog.EmbeddedServer) *staleAPI {
	t.Helper()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	p := &staleAPI{nc: nc, frozen: map[string]*nats.Msg{}}
	if _, err := nc.Subscribe(staleAPIPrefix+">", p.serve); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *staleAPI) serve(m *nats.Msg) {
	subj := jetstream.DefaultAPIPrefix + strings.TrimPrefix(m.Subject, staleAPIPrefix)
	p.mu.Lock()
	reply := p.frozen[subj]
	p.mu.Unlock()
	if reply != nil {
		p.served.Add(1)
	} else {
		var err error
		if reply, err = p.nc.RequestMsg(&nats.Msg{Subject: subj, Header: m.Header, Data: m.Data}, 5*time.Second); err != nil {
			return // the requester times out
		}
	}
	_ = m.RespondMsg(&nats.Msg{Header: reply.Header, Data: reply.Data})
}

// freeze makes the direct get of the last message on subject of the
// default stream answer from now on what it answers now.
func (p *staleAPI) freeze(t *testing.T, subject string) {
	t.Helper()
	subj := jetstream.DefaultAPIPrefix + "DIRECT.GET." + natslog.DefaultStream + "." + subject
	reply, err := p.nc.Request(subj, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.frozen[subj] = reply
	p.mu.Unlock()
}

// TestAppendRefusedWhileAReplicaIsBehind checks that an append the stream
// refuses while the replica answering reads is behind (it still shows the
// expected Seq) reports a conflict with the Seq the leader holds, not an
// error of unknown outcome after retrying, and that the Log then appends
// after that Seq.
func TestAppendRefusedWhileAReplicaIsBehind(t *testing.T) {
	srv, js := setup(t)
	ctx := testCtx(t)
	a := newLog(t, js)
	mustAppend(t, a, "T", "x", 0, ev("1"))
	stale := newStaleAPI(t, srv)
	stale.freeze(t, "es.T.x")
	mustAppend(t, a, "T", "x", 1, ev("2"), ev("3"))

	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	bjs, err := jetstream.NewWithAPIPrefix(nc, strings.TrimSuffix(staleAPIPrefix, "."))
	if err != nil {
		t.Fatal(err)
	}
	b := newLog(t, bjs)
	_, err = b.Append(ctx, "T", "x", 1, ev("late"))
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || ce.EntityType != "T" || ce.EntityID != "x" || ce.Expected != 1 || ce.Actual != 3 {
		t.Fatalf("Append expecting seq 1: got %v, want a conflict on T/x expected 1 actual 3", err)
	}
	if stale.served.Load() == 0 {
		t.Fatal("no read was answered by the stale replica: the test tested nothing")
	}
	mustAppend(t, b, "T", "x", 3, ev("4"))
	var names []string
	for r, err := range a.ReadEntity(ctx, "T", "x", 1) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	if got, want := strings.Join(names, " "), "1 2 3 4"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

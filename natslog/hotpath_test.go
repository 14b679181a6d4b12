package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/eventlog"
)

// TestPublishAckRealAcks reads the acks a real server sends for publishes
// that are stored, refused for a wrong last subject sequence, refused for
// size, and published where nothing listens, and checks publishAck, with
// ackSeq's shortcut, against a full JSON decoding of each.
func TestPublishAckRealAcks(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ACKS", Subjects: []string{"acks.>"}, MaxMsgSize: 64}); err != nil {
		t.Fatal(err)
	}
	// request publishes and returns the reply as the inbox gets it, status
	// replies included.
	request := func(subj string, expect string, data []byte) *nats.Msg {
		t.Helper()
		inbox := nc.NewInbox()
		ch := make(chan *nats.Msg, 1)
		sub, err := nc.Subscribe(inbox, func(m *nats.Msg) { ch <- m })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		m := &nats.Msg{Subject: subj, Reply: inbox, Data: data, Header: nats.Header{}}
		if expect != "" {
			m.Header.Set(hdrExpectedLastSubjSeq, expect)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		select {
		case reply := <-ch:
			return reply
		case <-ctx.Done():
			t.Fatal(ctx.Err())
			return nil
		}
	}
	for i := range 120 { // stream sequences of several digits
		if reply := request("acks.fill", "", []byte("x")); reply.Header.Get(hdrStatus) != "" {
			t.Fatalf("fill %d: status %q", i, reply.Header.Get(hdrStatus))
		}
	}
	cases := []struct {
		name      string
		reply     *nats.Msg
		wantSeq   uint64
		wantRetry bool
		wantCode  jetstream.ErrorCode // a wrong last sequence *jetstream.APIError
		wantErr   error               // matched with errors.Is
		shortcut  bool                // ackSeq reads it
	}{
		{name: "stored first", reply: request("acks.a", "0", []byte("1")), wantSeq: 121, shortcut: true},
		{name: "stored after", reply: request("acks.a", "121", []byte("2")), wantSeq: 122, shortcut: true},
		{name: "wrong last sequence", reply: request("acks.a", "121", []byte("3")), wantCode: codeWrongLastSequence},
		{name: "first write guarded", reply: request("acks.a", "0", []byte("3")), wantCode: codeWrongLastSequence},
		{name: "too large", reply: request("acks.b", "", make([]byte, 100)), wantErr: ErrTooLarge},
		{name: "no responders", reply: request("nowhere", "", nil), wantRetry: true, wantErr: errNoResponse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq, ok := ackSeq(c.reply.Data)
			if ok != c.shortcut || ok && seq != c.wantSeq {
				t.Errorf("ackSeq(%q) = %d, %v; want %d, %v", c.reply.Data, seq, ok, c.wantSeq, c.shortcut)
			}
			if len(c.reply.Data) > 0 {
				var full pubAck
				if err := json.Unmarshal(c.reply.Data, &full); err != nil {
					t.Fatalf("the server's ack %q: %v", c.reply.Data, err)
				}
				if ok && (full.Seq != seq || full.Error != nil) {
					t.Errorf("ackSeq(%q) = %d, but the ack decodes to seq %d, error %v", c.reply.Data, seq, full.Seq, full.Error)
				}
			}
			pos, retry, err := publishAck(c.reply, 1)
			if pos != c.wantSeq || retry != c.wantRetry {
				t.Errorf("publishAck(%q) = %d, retry %v; want %d, retry %v", c.reply.Data, pos, retry, c.wantSeq, c.wantRetry)
			}
			switch {
			case c.wantCode != 0:
				var apiErr *jetstream.APIError
				if !errors.As(err, &apiErr) || !isWrongLast(err) {
					t.Errorf("publishAck(%q) error = %v; want a wrong last sequence API error", c.reply.Data, err)
				}
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Errorf("publishAck(%q) error = %v; want %v", c.reply.Data, err, c.wantErr)
				}
			case err != nil:
				t.Errorf("publishAck(%q) error = %v", c.reply.Data, err)
			}
		})
	}
}

// TestAckSeqRejects checks that ackSeq leaves to the full decoder every
// reply that is not a plain successful ack.
func TestAckSeqRejects(t *testing.T) {
	for _, b := range []string{
		``, `{}`, `{"stream":"S"}`, `{"stream":"S","seq":0}`, `{"stream":"S","seq":}`,
		`{"stream":"S","seq":12`, `{"stream":"S","seq":12x}`, `{"stream":"S","seq":-1}`,
		`{"stream":"S","seq":123456789012345678901}`,
		`{"stream":"S","seq":18446744073709551615}`, // 20 digits: decoded in full
		`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"S","seq":0}`,
		`{"stream":"S","seq":7,"error":{"code":503}}`,
	} {
		if seq, ok := ackSeq([]byte(b)); ok {
			t.Errorf("ackSeq(%q) = %d, true; want false", b, seq)
		}
	}
	for b, want := range map[string]uint64{
		`{"stream":"S","seq":7}`:                                7,
		`{"stream":"S","seq":9999999999999999999}`:              9999999999999999999,
		`{"stream":"S","domain":"d","seq":42,"duplicate":true}`: 42,
	} {
		if seq, ok := ackSeq([]byte(b)); !ok || seq != want {
			t.Errorf("ackSeq(%q) = %d, %v; want %d, true", b, seq, ok, want)
		}
	}
}

// TestReplySubjects checks that the inbox reads back the slot and id of
// every reply subject it builds, and refuses others.
func TestReplySubjects(t *testing.T) {
	b := &inbox{prefix: "_INBOX.abc."}
	for _, c := range []struct {
		slot uint32
		id   uint64
	}{{0, 1}, {7, 12345}, {1<<32 - 1, 1<<64 - 1}} {
		subj := string(b.appendReply(nil, c.slot, c.id))
		slot, id, ok := b.parseReply(subj)
		if !ok || slot != c.slot || id != c.id {
			t.Errorf("parseReply(%q) = %d, %d, %v; want %d, %d, true", subj, slot, id, ok, c.slot, c.id)
		}
	}
	for _, subj := range []string{"_INBOX.abc.", "_INBOX.abc.12", "_INBOX.abc.-1", "_INBOX.abc.1-", "_INBOX.abc.1-0", "_INBOX.abc.zzzzzzzzz-1", "_INBOX.abc.1-2-3", "_INBOX.ab"} {
		if slot, id, ok := b.parseReply(subj); ok {
			t.Errorf("parseReply(%q) = %d, %d, true; want false", subj, slot, id)
		}
	}
}

// TestInboxSlots checks that a slot is reused only under a new id, so a
// late reply to a request that ended finds nothing.
func TestInboxSlots(t *testing.T) {
	b := &inbox{}
	c1 := &call{}
	b.register(c1)
	slot1, id1 := c1.slot, c1.id
	b.unregister(c1)
	if b.inflight != 0 || b.registered(slot1, id1) != nil {
		t.Fatalf("after unregister: %d in flight, slot %d id %d still registered", b.inflight, slot1, id1)
	}
	c2, c3 := &call{}, &call{}
	b.register(c2)
	b.register(c3)
	if c2.slot != slot1 || c2.id == id1 {
		t.Errorf("the second request got slot %d id %d; want the freed slot %d under a new id", c2.slot, c2.id, slot1)
	}
	if b.registered(slot1, id1) != nil {
		t.Errorf("the ended request's id finds a request in its reused slot")
	}
	if b.registered(c2.slot, c2.id) != c2 || b.registered(c3.slot, c3.id) != c3 || c3.slot == c2.slot {
		t.Errorf("registered requests: slots %d and %d", c2.slot, c3.slot)
	}
	if b.inflight != 2 || b.registered(99, c2.id) != nil {
		t.Errorf("%d in flight; or an unknown slot finds a request", b.inflight)
	}
}

// TestEventMsgRecycled checks that a recycled event message carries exactly
// the headers of its event, whatever the message it was before carried.
func TestEventMsgRecycled(t *testing.T) {
	full := eventlog.Event{Name: "Full name", Revision: 3, Metadata: map[string]string{"k": "v w"}, Data: []byte("d")}
	plain := eventlog.Event{Name: "Plain", Data: []byte("p")}
	type want map[string]string
	check := func(t *testing.T, m *outMsg, w want) {
		t.Helper()
		got := want{}
		for k, vs := range m.Header {
			if len(vs) != 1 {
				t.Errorf("header %s has %d values", k, len(vs))
			}
			got[k] = vs[0]
		}
		if !maps.Equal(got, w) {
			t.Errorf("headers %v; want %v", got, w)
		}
	}
	for _, order := range [][]string{{"full", "plain", "batch", "plain", "full"}, {"plain", "plain", "full", "full", "batch", "batch", "plain"}} {
		for _, step := range order {
			switch step {
			case "full":
				m, _ := eventMsg("s.full", 123456789, &full, true)
				m.expect(987654321)
				check(t, m, want{hdrSeq: "123456789", hdrEvent: "Full%20name", hdrRev: "3", hdrMeta: "k=v+w", hdrExpectedLastSubjSeq: "987654321"})
				m.release()
			case "plain":
				m, _ := eventMsg("s.plain", 5, &plain, false)
				check(t, m, want{hdrSeq: "5", hdrEvent: "Plain"})
				if m.Subject != "s.plain" || string(m.Data) != "p" || m.Reply != "" {
					t.Errorf("message %q %q reply %q", m.Subject, m.Data, m.Reply)
				}
				m.release()
			case "batch":
				m, _ := eventMsg("s.batch", 7, &plain, true)
				m.expect(0)
				m.Header[hdrBatchID] = []string{"b"}
				m.Header[hdrBatchCommit] = []string{"1"}
				check(t, m, want{hdrSeq: "7", hdrEvent: "Plain", hdrExpectedLastSubjSeq: "0", hdrBatchID: "b", hdrBatchCommit: "1"})
				m.release()
			}
		}
	}
	// Values set from digits stay as they were until release, whatever
	// else is built meanwhile.
	a, _ := eventMsg("s.a", 1000, &plain, true)
	a.expect(2000)
	b, _ := eventMsg("s.b", 3000, &plain, true)
	b.expect(4000)
	check(t, a, want{hdrSeq: "1000", hdrEvent: "Plain", hdrExpectedLastSubjSeq: "2000"})
	check(t, b, want{hdrSeq: "3000", hdrEvent: "Plain", hdrExpectedLastSubjSeq: "4000"})
	a.release()
	b.release()
}

// TestCacheEntries checks the entries that appends start from: an ack
// settles the entry it started from, and one that left the cache
// (forgotten, evicted) in the meantime comes back with the ack's tail.
func TestCacheEntries(t *testing.T) {
	c := newTailCache(cacheShards) // one entry per shard
	c.set("es.T.a", tail{seq: 1, sseq: 10})
	e, tl := c.lookup([]byte("es.T.a"))
	if e == nil || e.subj != "es.T.a" || tl != (tail{1, 10}) {
		t.Fatalf("lookup = %v, %v", e, tl)
	}
	if e, _ := c.lookup([]byte("es.T.b")); e != nil {
		t.Fatalf("lookup of an unknown subject = %v", e)
	}
	c.settle(e, tail{2, 11})
	if got, ok := c.get("es.T.a"); !ok || got != (tail{2, 11}) {
		t.Errorf("after settle: %v, %v", got, ok)
	}
	c.forget("es.T.a")
	c.settle(e, tail{3, 12})
	if got, ok := c.get("es.T.a"); !ok || got != (tail{3, 12}) {
		t.Errorf("settle after forget: %v, %v; want it remembered again", got, ok)
	}
	// Fill a's shard until a is evicted; settling its old entry puts it back.
	e, _ = c.lookup([]byte("es.T.a"))
	shard := c.shardIndex("es.T.a")
	for i := 0; ; i++ {
		subj := "es.T.x" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26))
		if c.shardIndex(subj) != shard {
			continue
		}
		c.set(subj, tail{1, uint64(100 + i)})
		if _, ok := c.get("es.T.a"); !ok {
			break
		}
	}
	if !e.gone {
		t.Fatalf("an evicted entry is not marked gone")
	}
	c.settle(e, tail{4, 13})
	if got, ok := c.get("es.T.a"); !ok || got != (tail{4, 13}) {
		t.Errorf("settle after eviction: %v, %v", got, ok)
	}
	if n := c.len(); n > cacheShards {
		t.Errorf("%d entries, over the size", n)
	}
}

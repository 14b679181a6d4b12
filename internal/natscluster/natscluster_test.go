package natscluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/internal/natscluster"
)

func TestStartRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		dir  string
		n    int
		want string
	}{
		{"empty dir", "", 3, "empty directory"},
		{"no nodes", t.TempDir(), 0, "0 nodes"},
		{"negative nodes", t.TempDir(), -1, "-1 nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := natscluster.Start(ctx, tc.dir, tc.n)
			if err == nil {
				c.Stop()
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, natscluster.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

// TestKillAndRestart starts three nodes, creates an R3 stream, kills a
// follower, publishes, restarts it and checks it catches up.
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := natscluster.Start(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if got, want := c.Len(), 3; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	for i := range 3 {
		if got := c.Index(c.Name(i)); got != i {
			t.Errorf("Index(Name(%d)=%q) = %d", i, c.Name(i), got)
		}
		if !strings.HasPrefix(c.URL(i), "nats://127.0.0.1:") {
			t.Errorf("URL(%d) = %q, want loopback", i, c.URL(i))
		}
	}
	if got := c.Index("nope"); got != -1 {
		t.Errorf(`Index("nope") = %d, want -1`, got)
	}
	nc, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Index(info.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("leader %q is not a node", info.Cluster.Leader)
	}
	follower := (leader + 1) % 3
	if err := c.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if c.Running(follower) {
		t.Errorf("Running(%d) after Kill", follower)
	}
	if err := c.Kill(follower); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("second Kill: err = %v, want not running", err)
	}
	if _, err := c.StreamState(ctx, 7, "S"); !errors.Is(err, natscluster.ErrInvalid) {
		t.Errorf("StreamState(7): err = %v, want ErrInvalid", err)
	}
	// A publish whose connection was the killed node's may be lost with it
	// and wait for its reply until its deadline: each gets a short one and
	// is sent again, with a message id so the stream keeps it once.
	for i := range 10 {
		for attempt := 1; ; attempt++ {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := js.Publish(pctx, "s.x", []byte("x"), jetstream.WithMsgID(fmt.Sprintf("m-%d", i)))
			cancel()
			if err == nil {
				break
			}
			if attempt == 5 || ctx.Err() != nil {
				t.Fatalf("publish %d, attempt %d: %v", i, attempt, err)
			}
		}
	}
	if err := c.Restart(ctx, follower); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, follower); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Errorf("second Restart: err = %v, want is running", err)
	}
	for {
		st, err := c.StreamState(ctx, follower, "S")
		if err == nil && st.LastSeq == 10 && st.Msgs == 10 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("node %d did not catch up: %+v, %v", follower, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Stop()
	for i := range 3 {
		if c.Running(i) {
			t.Errorf("node %d running after Stop", i)
		}
	}
	if err := c.Kill(0); !errors.Is(err, natscluster.ErrStopped) {
		t.Errorf("Kill after Stop: err = %v, want ErrStopped", err)
	}
}

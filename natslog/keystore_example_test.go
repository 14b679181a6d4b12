package natslog_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsourced-go/eventsourced/natslog"
)

// A KeyStore on an embedded server: Setup creates its bucket, GetOrCreate
// gives a subject its key, Forget erases it.
func ExampleKeyStore() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keys")
	defer os.RemoveAll(dir)
	srv, err := natslog.StartEmbedded(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, _ := srv.Connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)

	keys, _ := natslog.NewKeyStore(js)
	defer keys.Close()
	if err := keys.Setup(ctx); err != nil {
		fmt.Println(err)
		return
	}
	k, _ := keys.GetOrCreate(ctx, "user@example.com")
	again, _ := keys.GetOrCreate(ctx, "user@example.com")
	fmt.Println("same key:", k.ID == again.ID, "bytes:", len(k.Material))

	_ = keys.Forget(ctx, "user@example.com")
	_, found, _ := keys.Get(ctx, "user@example.com")
	fmt.Println("found after Forget:", found)
	// Output:
	// same key: true bytes: 32
	// found after Forget: false
}

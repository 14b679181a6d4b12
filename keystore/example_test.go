package keystore_test

import (
	"context"
	"fmt"

	"github.com/eventsourced-go/eventsourced/keystore"
)

// A subject gets its key on first use, the same key on every later use, and
// a new one after it was forgotten: data written under the old key stays
// unreadable.
func Example() {
	ctx := context.Background()
	keys := keystore.NewMemory()
	defer keys.Close()

	k1, _ := keys.GetOrCreate(ctx, "customer-42")
	k2, _ := keys.GetOrCreate(ctx, "customer-42")
	fmt.Println("same key:", k1.ID == k2.ID, "bytes:", len(k1.Material))

	_ = keys.Forget(ctx, "customer-42")
	_, found, _ := keys.Get(ctx, "customer-42")
	fmt.Println("found after Forget:", found)

	k3, _ := keys.GetOrCreate(ctx, "customer-42")
	fmt.Println("new key after Forget:", k3.ID != k1.ID)

	_, _, err := keys.Get(ctx, "")
	fmt.Println(err)
	// Output:
	// same key: true bytes: 32
	// found after Forget: false
	// new key after Forget: true
	// keystore: invalid argument: empty subject
}

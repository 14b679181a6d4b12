package entity_test

import (
	"context"
	"testing"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/shredtest"
	"github.com/eventsourced-go/eventsourced/keystore"
	"github.com/eventsourced-go/eventsourced/snapshotstore"
)

// TestCryptoShredding runs the crypto-shredding scenario on the in-memory
// log, snapshot store and key store; the raw bytes are the records' and
// snapshots' data, which the memory stores keep as given.
func TestCryptoShredding(t *testing.T) {
	shredtest.Run(t, func(t *testing.T) shredtest.Backend {
		log, snaps := eventlog.NewMemory(), snapshotstore.NewMemory()
		return shredtest.Backend{Log: log, Snapshots: snaps, Keys: keystore.NewMemory(), Raw: func(t *testing.T) []byte {
			var raw []byte
			for rec, err := range log.ReadType(context.Background(), shredtest.TypeName, 0) {
				if err != nil {
					t.Fatal(err)
				}
				raw = append(raw, rec.Data...)
			}
			for _, id := range []string{"c-ann", "c-bob"} {
				list, err := snaps.List(context.Background(), shredtest.TypeName, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range list {
					raw = append(raw, s.Data...)
				}
			}
			return raw
		}}
	})
}

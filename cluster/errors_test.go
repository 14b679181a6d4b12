package cluster_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/eventsourced-go/eventsourced/cluster"
	"github.com/eventsourced-go/eventsourced/entity"
	"github.com/eventsourced-go/eventsourced/eventlog"
)

// TestErrorsOfStoredDataRoundTrip: the errors of a deleted entity and of
// an unusable snapshot keep their sentinels across members.
func TestErrorsOfStoredDataRoundTrip(t *testing.T) {
	cases := []struct {
		err   error
		codes []string
		match []error
	}{
		{&entity.RecoveryError{EntityType: "T", EntityID: "x", Seq: 1, Err: fmt.Errorf("read events: %w", &eventlog.DeletedError{EntityType: "T", EntityID: "x", Seq: 4})},
			[]string{"entity.recovery", "eventlog.deleted"}, []error{entity.ErrRecovery, eventlog.ErrDeleted}},
		{&entity.RecoveryError{EntityType: "T", EntityID: "x", Seq: 4, Err: fmt.Errorf("%w: snapshot at seq 4", entity.ErrUnusableSnapshot)},
			[]string{"entity.recovery", "entity.unusable_snapshot"}, []error{entity.ErrRecovery, entity.ErrUnusableSnapshot}},
	}
	for _, tc := range cases {
		codes := cluster.CodesOf(tc.err)
		if !slices.Equal(codes, tc.codes) {
			t.Fatalf("codes of %v: %v, want %v", tc.err, codes, tc.codes)
		}
		remote := &cluster.RemoteError{Codes: codes, Text: tc.err.Error(), Member: "m"}
		for _, target := range tc.match {
			if !errors.Is(remote, target) {
				t.Errorf("remote %v does not match %v", remote, target)
			}
		}
		if remote.Error() != tc.err.Error() {
			t.Errorf("remote text %q, want %q", remote.Error(), tc.err.Error())
		}
	}
}

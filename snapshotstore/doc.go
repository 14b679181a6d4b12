// Package snapshotstore defines the contract for storing entity snapshots:
// the [Store] interface, the [Snapshot] it keeps, the errors every backend
// reports, and [Memory], the in-memory reference implementation.
//
// A snapshot is an entity's encoded state as of an event Seq. The entity
// runtime saves one every N events and, on activation, loads the latest and
// replays only the events after its Seq from the event log. Stores speak
// bytes; encoding the state is the runtime's business.
//
// A store keys snapshots by (entity type, entity id). [Store.Save] at a Seq
// replaces a snapshot at the same Seq and then keeps only the K snapshots
// with the highest Seq; [Store.Load] returns the one with the highest Seq;
// [Store.Delete] removes them all.
//
// # Optional capabilities
//
// Backends may implement small extra interfaces, found by type assertion:
//
//   - [Lister] lists all of an entity's snapshots, oldest first, for tools
//     and for the conformance suite's check of keep.
//   - [Closer] releases the backend's resources.
//
// [Memory] implements both.
//
// # Writing a backend
//
// A backend implements [Store], calls [Validate] first in Save and
// [ValidateKey] in Load and Delete, sets Time when it saves, wraps its own
// errors with context, and runs the conformance suite in its tests:
//
//	func TestStore(t *testing.T) {
//		snapshotstoretest.Run(t, func(t *testing.T) snapshotstore.Store {
//			s := mystore.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// # Concurrency
//
// Every [Store] is safe for concurrent use by multiple goroutines, and so is
// [Memory].
//
// # Errors
//
// Each condition has one sentinel, matched with [errors.Is]: [ErrInvalid]
// for bad arguments and [ErrClosed] after [Closer.Close]. Loading an entity
// without snapshots is not an error: [Store.Load] reports it with found
// false.
package snapshotstore

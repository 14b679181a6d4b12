// Package deletetest holds the scenarios of deleting entities as a whole
// (entity.Kind.Delete over an eventlog.StreamDeleter) that every backend
// runs with the entity runtime: final tombstones, reuse, idempotence, and
// what other processes and readers of the log see.
package deletetest

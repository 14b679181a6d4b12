// Package evolutiontest holds the scenarios of state schema evolution that
// every backend runs with the entity runtime: two releases of one entity
// type, the second changing its state, over the same event log and snapshot
// store. entity's tests run them on memory, natslog's on NATS JetStream and
// postgreslog's on PostgreSQL.
package evolutiontest

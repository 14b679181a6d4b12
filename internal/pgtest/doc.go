// Package pgtest gives tests a PostgreSQL schema of their own on the test
// server that `make test` provisions (EVENTSOURCED_POSTGRES_DSN), dropped
// when the test ends, and a postgreslog.Log set up in it.
//
// Without the variable a test is skipped, unless CI=true, where it fails:
// CI must not pass by skipping.
//
// It is for tests only; the library packages never import it.
package pgtest

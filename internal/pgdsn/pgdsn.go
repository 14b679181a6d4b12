// Package pgdsn finds the PostgreSQL server of the tests: the one rule,
// in one place, by which a test without a server skips, and fails
// instead when CI=true, so that CI never passes by skipping.
package pgdsn

import (
	"os"
	"testing"
)

// Var names the environment variable with the test server's DSN (make
// test sets it to the throwaway server it provisions).
const Var = "EVENTSOURCED_POSTGRES_DSN"

// Require returns the test server's DSN. Without one the test skips,
// unless CI=true, when it fails.
func Require(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Var)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: PostgreSQL tests must run in CI (make test provisions a server)", Var)
		}
		t.Skipf("%s is not set: skipping PostgreSQL tests (make test provisions a server)", Var)
	}
	return dsn
}

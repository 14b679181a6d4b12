package pgdsn

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a test ended instead of
// ending it; Fatalf and Skipf stop the caller as testing's do.
type recorder struct {
	testing.TB
	fatal, skip string
}

type stopped struct{}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, a ...any) {
	r.fatal = fmt.Sprintf(format, a...)
	panic(stopped{})
}

func (r *recorder) Skipf(format string, a ...any) {
	r.skip = fmt.Sprintf(format, a...)
	panic(stopped{})
}

// require calls Require on r, recovering from the stop.
func require(r *recorder) (dsn string) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(stopped); !ok {
				panic(v)
			}
		}
	}()
	return Require(r)
}

func TestRequire(t *testing.T) {
	t.Setenv(Var, "postgres://x")
	if got := require(&recorder{}); got != "postgres://x" {
		t.Errorf("Require = %q, want the variable's value", got)
	}

	t.Setenv(Var, "")
	t.Setenv("CI", "")
	r := &recorder{}
	require(r)
	if !strings.Contains(r.skip, Var+" is not set") || r.fatal != "" {
		t.Errorf("without a DSN outside CI: skip %q, fatal %q; want a skip naming %s", r.skip, r.fatal, Var)
	}

	t.Setenv("CI", "true")
	r = &recorder{}
	require(r)
	if !strings.Contains(r.fatal, Var+" is not set and CI=true") || r.skip != "" {
		t.Errorf("without a DSN in CI: fatal %q, skip %q; want a failure naming %s and CI=true", r.fatal, r.skip, Var)
	}
}

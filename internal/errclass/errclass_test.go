package errclass_test

import (
	"errors"
	"io"
	"testing"

	"github.com/eventsourced-go/eventsourced/internal/errclass"
)

var (
	errBackend  = errors.New("backend: unavailable")
	errContract = errors.New("contract: unavailable")
)

type native struct{ code int }

func (n *native) Error() string { return "native failure" }

func TestError(t *testing.T) {
	cause := &native{code: 7}
	err := error(errclass.New("database unavailable", cause, errBackend, errContract))
	if got, want := err.Error(), "database unavailable: native failure"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, errBackend) || !errors.Is(err, errContract) {
		t.Errorf("%v does not match its sentinels", err)
	}
	var n *native
	if !errors.As(err, &n) || n.code != 7 {
		t.Errorf("errors.As does not find the cause")
	}
	if errors.Is(err, io.EOF) {
		t.Errorf("%v matches io.EOF", err)
	}
	if got := errclass.New("too large", nil, errBackend).Error(); got != "too large" {
		t.Errorf("without a cause: %q", got)
	}
	if got := errclass.New("", io.EOF, errBackend).Error(); got != "EOF" {
		t.Errorf("without a message: %q", got)
	}
}

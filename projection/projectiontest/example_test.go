package projectiontest_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/eventsourced-go/eventsourced/projection"
	"github.com/eventsourced-go/eventsourced/projection/projectiontest"
)

// A store's test runs the whole suite with Run:
//
//	func TestOffsetStore(t *testing.T) {
//		projectiontest.Run(t, func(t *testing.T) projection.OffsetStore {
//			return projection.NewMemory()
//		})
//	}
//
// This example runs the same cases against the memory store without the
// testing package, through a small TB of its own, and prints what each
// case found. The memory store does not implement
// [projectiontest.Transactional], so it is checked as at-least-once and
// the exactly-once cases do not apply.
func Example() {
	for _, c := range projectiontest.Cases() {
		tb := &printTB{name: c.Name}
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.Fn(tb, projection.NewMemory())
		}()
		<-done // the case has ended: its fields are ours to read
		for _, f := range tb.cleanups {
			defer f()
		}
		switch {
		case tb.failed:
			fmt.Printf("%-21s FAIL %s\n", c.Name, strings.Join(tb.msgs, "; "))
		case len(tb.msgs) > 0:
			fmt.Printf("%-21s ok (%s)\n", c.Name, tb.msgs[0])
		default:
			fmt.Printf("%-21s ok\n", c.Name)
		}
	}
	// Output:
	// LoadUnknown           ok
	// CommitMovesOffset     ok
	// CommitMovesBack       ok
	// CommitFromWrongOffset ok
	// FailingHandle         ok
	// Reset                 ok
	// ResetAtLeastOnce      ok
	// ResetExactlyOnce      ok (*projection.Memory does not implement Transactional: it is at-least-once; case not applicable)
	// NamesAreIndependent   ok
	// ConcurrentRunners     ok
	// CrashAtLeastOnce      ok
	// CrashExactlyOnce      ok (*projection.Memory does not implement Transactional: it is at-least-once; case not applicable)
	// Offsets               ok
	// CanceledContext       ok
}

// printTB is a projectiontest.TB that keeps what a case reports.
type printTB struct {
	name string

	// mu guards the fields below: cases may report from goroutines.
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
}

func (p *printTB) Helper()      {}
func (p *printTB) Name() string { return p.name }

func (p *printTB) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

func (p *printTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

func (p *printTB) Logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, fmt.Sprintf(format, args...))
}

func (p *printTB) Errorf(format string, args ...any) {
	p.Logf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = true
}

// Fatalf ends the case's goroutine, as testing.T's does.
func (p *printTB) Fatalf(format string, args ...any) {
	p.Errorf(format, args...)
	runtime.Goexit()
}

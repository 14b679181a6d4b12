package conformancetest

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Recorder is a [TB] that records the failures of a case instead of failing
// the test that runs it, so that a suite can run its cases against subjects
// that must fail them.
type Recorder struct {
	name string

	// mu guards failed, msgs and cleanups: cases report from goroutines.
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
}

var _ TB = (*Recorder)(nil)

// Helper implements [TB]; it does nothing.
func (r *Recorder) Helper() {}

// Name implements [TB].
func (r *Recorder) Name() string { return r.name }

// Logf implements [TB]; it drops the message.
func (r *Recorder) Logf(format string, args ...any) {}

// Errorf implements [TB]: it records the failure.
func (r *Recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// Fatalf implements [TB]: it records the failure and ends the case's
// goroutine, like testing.T.FailNow.
func (r *Recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// Cleanup implements [TB]; [Record] runs the functions when the case ends.
func (r *Recorder) Cleanup(fn func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, fn)
}

// Failed implements [TB].
func (r *Recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Messages returns the failures recorded so far, in order.
func (r *Recorder) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Record runs c against s in its own goroutine, as testing does, with a
// [Recorder] named name/c.Name, then runs the case's cleanups, last
// registered first, and returns the Recorder.
func Record[S any](name string, c Case[S], s S) *Recorder {
	r := &Recorder{name: name + "/" + c.Name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Fn(r, s)
	}()
	<-done
	r.mu.Lock()
	cleanups := r.cleanups
	r.mu.Unlock()
	for _, fn := range slices.Backward(cleanups) {
		fn()
	}
	return r
}

// CheckCases checks a suite's table: every case has a name, a rule and a
// function, and no name or rule is used twice.
func CheckCases[S any](t *testing.T, cases []Case[S]) {
	t.Helper()
	names, rules := make(map[string]bool), make(map[string]bool)
	for _, c := range cases {
		if c.Name == "" || c.Rule == "" || c.Fn == nil {
			t.Errorf("case %q lacks a name, rule or function", c.Name)
		}
		if names[c.Name] {
			t.Errorf("case name %s is used twice", c.Name)
		}
		if rules[c.Rule] {
			t.Errorf("case %s states the rule of another case: %s", c.Name, c.Rule)
		}
		names[c.Name], rules[c.Rule] = true, true
	}
}

// CheckPass runs every case, through a [Recorder], against the subjects
// newSubject returns, and fails t if any case fails: the reference
// implementation must pass its own suite.
func CheckPass[S any](t *testing.T, cases []Case[S], newSubject func(t *testing.T) S) {
	t.Helper()
	for _, c := range cases {
		if r := Record(t.Name(), c, newSubject(t)); r.Failed() {
			t.Errorf("case %s failed:\n%s", c.Name, strings.Join(r.Messages(), "\n"))
		}
	}
}

// Broken is a deliberately broken subject and the cases that must catch it.
type Broken[S any] struct {
	// Name says what the subject does wrong, as a subtest name.
	Name string
	// New returns a fresh broken subject; it registers any cleanup with t.
	New func(t *testing.T) S
	// CaughtBy names the cases that must fail against it.
	CaughtBy []string
}

// Break returns the broken subject named name, made by newSubject, and the
// cases that must catch it.
func Break[S any](name string, newSubject func(t *testing.T) S, caughtBy ...string) Broken[S] {
	return Broken[S]{Name: name, New: newSubject, CaughtBy: caughtBy}
}

// CheckCaught runs, for each broken subject, the cases that must catch it,
// each against a fresh subject through a [Recorder], and fails t unless
// every one of them fails with messages that all start with "rule: ".
func CheckCaught[S any](t *testing.T, cases []Case[S], broken []Broken[S]) {
	t.Helper()
	byName := make(map[string]Case[S])
	for _, c := range cases {
		byName[c.Name] = c
	}
	for _, b := range broken {
		t.Run(b.Name, func(t *testing.T) {
			for _, name := range b.CaughtBy {
				c, ok := byName[name]
				if !ok {
					t.Fatalf("no case %s", name)
				}
				r := Record(t.Name(), c, b.New(t))
				msgs := r.Messages()
				if len(msgs) == 0 {
					t.Errorf("case %s passed against a subject that %s", name, b.Name)
					continue
				}
				for _, msg := range msgs {
					if !strings.HasPrefix(msg, "rule: ") {
						t.Errorf("case %s reported %q, which does not name the rule that broke", name, msg)
					}
				}
				t.Logf("case %s: %s", name, msgs[0])
			}
		})
	}
}

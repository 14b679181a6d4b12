package conformancetest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TB is the part of [testing.TB] the cases use. *testing.T implements it;
// a [Recorder] lets a suite test itself against broken subjects.
//
// Fatalf must stop the goroutine running the case, as testing.T's does.
// Cases call it only from that goroutine and report from goroutines they
// start with Errorf.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Compile-time check that the testing types satisfy [TB].
var (
	_ TB = (*testing.T)(nil)
	_ TB = (*testing.B)(nil)
	_ TB = testing.TB(nil)
)

// Case is one conformance check of a contract, run against a subject of
// type S: a log, a store.
type Case[S any] struct {
	// Name names the subtest; it is unique within a suite.
	Name string
	// Rule states the contract rule the case checks, as a sentence.
	Rule string
	// Fn runs the check against s, a fresh subject nobody else uses. It
	// reports failures through t, each naming the rule that broke.
	Fn func(t TB, s S)
}

// New returns the case named name that checks rule with check. The rule is
// written here once: check reports its failures through [T.Errorf] and
// [T.Fatalf], which name it, and reads it with [T.Rule] to hand it to
// helpers.
func New[S any](name, rule string, check func(t *T, s S)) Case[S] {
	return Case[S]{Name: name, Rule: rule, Fn: func(tb TB, s S) {
		check(&T{TB: tb, rule: rule}, s)
	}}
}

// T is the [TB] a check gets from [New]: the test's, and the rule of the
// running case. Its Errorf and Fatalf report a failure of that rule, so a
// *T handed to a helper that takes a TB reports the case's rule too; the
// other methods are the TB's. [RuleErrorf] and [RuleFatalf] given a *T
// report the rule they are given, not the case's.
type T struct {
	TB
	rule string
}

// Rule returns the rule of the running case.
func (t *T) Rule() string { return t.rule }

// Errorf reports that the case's rule broke, and carries on. The message
// is "rule: <the rule>: " followed by the formatted text. It may be called
// from any goroutine.
func (t *T) Errorf(format string, args ...any) {
	t.Helper()
	RuleErrorf(t.TB, t.rule, format, args...)
}

// Fatalf reports that the case's rule broke, and ends the case. Call it
// only from the case's goroutine.
func (t *T) Fatalf(format string, args ...any) {
	t.Helper()
	RuleFatalf(t.TB, t.rule, format, args...)
}

// RuleErrorf reports that rule broke, and carries on: for helpers that
// check a rule of their own, such as "an iterator yields an error once, as
// its last element". It may be called from any goroutine.
func RuleErrorf(t TB, rule, format string, args ...any) {
	t.Helper()
	if ct, ok := t.(*T); ok {
		t = ct.TB
	}
	t.Errorf("rule: %s: %s", rule, fmt.Sprintf(format, args...))
}

// RuleFatalf reports that rule broke, and ends the case. Call it only from
// the case's goroutine.
func RuleFatalf(t TB, rule, format string, args ...any) {
	t.Helper()
	if ct, ok := t.(*T); ok {
		t = ct.TB
	}
	t.Fatalf("rule: %s: %s", rule, fmt.Sprintf(format, args...))
}

// Run runs every case against the subjects newSubject returns, each as a
// subtest named after the case, with a fresh subject per case.
func Run[S any](t *testing.T, cases []Case[S], newSubject func(t *testing.T) S) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			c.Fn(t, newSubject(t))
		})
	}
}

// CaseTimeout bounds every case that uses [Context], so a hung backend fails
// instead of hanging.
const CaseTimeout = 60 * time.Second

// Context returns a context canceled when the case ends or after
// [CaseTimeout].
func Context(t TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), CaseTimeout)
	t.Cleanup(cancel)
	return ctx
}

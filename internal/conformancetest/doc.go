// Package conformancetest is the scaffolding the conformance suites share:
// eventlogtest, snapshotstoretest and projectiontest each hold only their
// cases and the helpers of their own contract, and take the rest from here.
//
// A suite writes each case once, as a [Case] made by [New] from a name, the
// rule it checks and a check function. The check gets a [*T], whose
// [T.Errorf] and [T.Fatalf] report a failure of that case's rule, so the
// sentence lives in the suite's table and nowhere else. Every failure
// message starts with "rule: " and the rule that broke: the case's own, or
// the one a helper names with [RuleErrorf] or [RuleFatalf]. [Run] runs the
// cases as subtests with a fresh subject each.
//
// The rest serves cases and self-tests: [Context] bounds a case in time,
// [NewNames] makes names unique to one run of one case, [Fill] builds long
// UTF-8 names, [Collect] and [MustCollect] drain iterators. [Record] runs a
// case with a [Recorder] in place of testing.T, and [CheckCases],
// [CheckPass] and [CheckCaught] are the self-tests every suite runs: a
// well-formed table, a reference subject that passes, and deliberately
// broken subjects that the right cases catch.
//
// It is internal: the suites and their self-tests use it; backends use the
// suites. It imports only the standard library.
//
// # Concurrency
//
// [Run] runs cases one after another. A case may report from goroutines it
// starts with [TB].Errorf (and so [T.Errorf] and [RuleErrorf]), never with
// Fatalf, which must run on the case's goroutine. A [Recorder] is safe for
// concurrent use.
//
// # Errors
//
// Nothing here returns an error: failures are reported through [TB].
package conformancetest

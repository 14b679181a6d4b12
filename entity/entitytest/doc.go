// Package entitytest tests entity logic in the given/when/then style, without
// goroutines, actors or storage:
//
//	f := entitytest.New(t, counterType, "c-1").Given(Incremented{By: 2})
//	entitytest.When(f, Increment{By: 3}).ThenEvents(Incremented{By: 3}).ThenReply(5)
//	entitytest.When(f, Increment{By: -1}).ThenError(ErrNotPositive)
//
// [When] runs a command through [entity.Execute], the same core the runtime
// uses, and round-trips every event and the new state through the type's
// codecs, so a codec that loses a field fails the test where it starts
// rather than at recovery in production.
//
// # Concurrency
//
// A [Fixture] belongs to one test goroutine.
//
// # Errors
//
// The Then methods report mismatches with t.Errorf and return the outcome so
// they chain; codec failures are t.Fatalf.
package entitytest

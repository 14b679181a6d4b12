package conformancetest

import "iter"

// Collect consumes an iterator to its end and returns what it yielded
// before an error, and the error. It reports a broken rule if the iterator
// yields anything after an error.
func Collect[V any](t TB, seq iter.Seq2[V, error]) ([]V, error) {
	t.Helper()
	var out []V
	var firstErr error
	extra := 0
	for v, err := range seq {
		switch {
		case firstErr != nil:
			extra++
		case err != nil:
			firstErr = err
		default:
			out = append(out, v)
		}
	}
	if extra > 0 {
		RuleErrorf(t, "an iterator yields an error once, as its last element",
			"%d elements followed the error %v", extra, firstErr)
	}
	return out, firstErr
}

// MustCollect is [Collect] that ends the case if the iterator yields an
// error; what describes the call in the report.
func MustCollect[V any](t TB, what string, seq iter.Seq2[V, error]) []V {
	t.Helper()
	out, err := Collect(t, seq)
	if err != nil {
		RuleFatalf(t, "a read of valid arguments with a live ctx yields no error", "%s: %v", what, err)
	}
	return out
}

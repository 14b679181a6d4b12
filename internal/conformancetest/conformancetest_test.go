package conformancetest_test

import (
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/eventsourced-go/eventsourced/internal/conformancetest"
)

// TestRulesNameWhatBroke checks the one place a rule is written: a case's
// failures carry its rule, a helper's rule replaces it, and Fatalf ends the
// case.
func TestRulesNameWhatBroke(t *testing.T) {
	var order []string
	c := conformancetest.New("Case", "the case's rule", func(t *conformancetest.T, s string) {
		t.Cleanup(func() { order = append(order, "first registered") })
		t.Cleanup(func() { order = append(order, "last registered") })
		if t.Rule() != "the case's rule" {
			t.Errorf("Rule() = %q", t.Rule())
		}
		t.Errorf("got %s", s)
		conformancetest.RuleErrorf(t, "a helper's rule", "got %d", 1)
		t.Fatalf("stop")
		t.Errorf("after Fatalf")
	})
	if c.Name != "Case" || c.Rule != "the case's rule" {
		t.Errorf("New made %+v", c)
	}
	r := conformancetest.Record(t.Name(), c, "x")
	want := []string{
		"rule: the case's rule: got x",
		"rule: a helper's rule: got 1",
		"rule: the case's rule: stop",
	}
	if got := r.Messages(); !slices.Equal(got, want) || !r.Failed() {
		t.Errorf("recorded %q, failed %t; want %q, true", got, r.Failed(), want)
	}
	if want := []string{"last registered", "first registered"}; !slices.Equal(order, want) {
		t.Errorf("cleanups ran %q, want %q", order, want)
	}
	if got, want := r.Name(), t.Name()+"/Case"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
}

func TestNamesAreUniqueAndPlain(t *testing.T) {
	a, b := conformancetest.NewNames(t), conformancetest.NewNames(t)
	if a.ID("x") == b.ID("x") {
		t.Errorf("two runs share the id %s", a.ID("x"))
	}
	for _, s := range []string{a.Type("x"), a.ID("x"), a.Name("x")} {
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
				t.Errorf("%q holds %q", s, r)
			}
		}
	}
}

func TestFill(t *testing.T) {
	for _, n := range []int{10, 255, 256} {
		s := conformancetest.Fill("prefix", n)
		if len(s) != n || !utf8.ValidString(s) || s[:6] != "prefix" {
			t.Errorf("Fill(prefix, %d): %d bytes, valid %t: %q", n, len(s), utf8.ValidString(s), s)
		}
		if s != conformancetest.Fill("prefix", n) {
			t.Errorf("Fill(prefix, %d) differs between calls", n)
		}
	}
}

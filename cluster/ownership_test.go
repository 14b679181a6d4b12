package cluster

import (
	"fmt"
	"slices"
	"testing"
)

// TestServedIDs: the set of served ids keeps every id until it holds more
// than twice the live entities plus pruneFloor; then it forgets, over two
// prunings, the ids that ran no command since the first.
func TestServedIDs(t *testing.T) {
	s := newServedIDs()
	ids := func() []string {
		var got []string
		s.each(func(id string) {
			if !slices.Contains(got, id) {
				got = append(got, id)
			}
		})
		slices.Sort(got)
		return got
	}
	for i := range pruneFloor + 10 {
		s.add(fmt.Sprint(i))
	}
	s.add("0")
	if got := s.len(); got != pruneFloor+10 {
		t.Fatalf("len %d after adding %d ids, one twice; want %d", got, pruneFloor+10, pruneFloor+10)
	}
	s.prune(5) // 2*5 + pruneFloor >= len: kept
	if got := len(ids()); got != pruneFloor+10 {
		t.Fatalf("%d ids after a prune with enough live entities, want %d", got, pruneFloor+10)
	}
	s.prune(0) // new generation; nothing forgotten yet
	s.add("1") // used again since
	s.add("new")
	if got := len(ids()); got != pruneFloor+11 {
		t.Fatalf("%d ids after the first prune, want %d", got, pruneFloor+11)
	}
	s.prune(0) // forgets what ran no command since the first prune
	if got, want := ids(), []string{"1", "new"}; !slices.Equal(got, want) {
		t.Fatalf("ids after the second prune: %v, want %v", got, want)
	}
	s.remove("1")
	if got, want := ids(), []string{"new"}; !slices.Equal(got, want) || s.len() != 1 {
		t.Fatalf("ids after remove: %v (len %d), want %v", got, s.len(), want)
	}
	s.prune(0) // below pruneFloor: kept
	if got := len(ids()); got != 1 {
		t.Fatalf("%d ids after a prune below pruneFloor, want 1", got)
	}
}

package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// The range ports are drawn from: above the well-known and most registered
// service ports, below every common ephemeral range.
const (
	low  = 20000
	high = 32767
)

var (
	mu     sync.Mutex
	handed = map[int]bool{} // ports this process was given
)

// Ports returns n distinct loopback ports in 20000-32767 that were free a
// moment ago and that this process was not given before. It fails when it
// cannot find them in 1,000 tries.
func Ports(n int) ([]int, error) {
	return pick(n, low, high)
}

// pick is Ports over the ports lo-hi.
func pick(n, lo, hi int) ([]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("freeport: Ports(%d): want at least 1 port", n)
	}
	mu.Lock()
	defer mu.Unlock()
	ports := make([]int, 0, n)
	var held []net.Listener // held until all are found, so none repeats
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("freeport: no %d free loopback ports in %d-%d after %d tries", n, lo, hi, tries)
		}
		p := lo + rand.N(hi-lo+1)
		if handed[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		held = append(held, l)
		ports = append(ports, p)
	}
	for _, p := range ports {
		handed[p] = true
	}
	return ports, nil
}

// TB is the part of testing.TB that [Port] uses (so that programs that
// start test servers, such as the bench, need not link package testing).
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Port returns one port as [Ports] does and fails the test if there is
// none.
func Port(t TB) int {
	t.Helper()
	ports, err := Ports(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

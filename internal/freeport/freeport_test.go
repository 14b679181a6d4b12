package freeport

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestPortsAreDistinctFreeAndBelowTheEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		ports, err := Ports(5)
		if err != nil {
			t.Fatal(err)
		}
		if len(ports) != 5 {
			t.Fatalf("Ports(5) returned %d ports: %v", len(ports), ports)
		}
		for _, p := range ports {
			if p < low || p > high {
				t.Fatalf("port %d outside %d-%d", p, low, high)
			}
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("port %d handed out but not free: %v", p, err)
			}
			l.Close()
		}
	}
}

func TestPortsSkipsBusyPorts(t *testing.T) {
	// Hold every other port of a small range; pick must hand out only the
	// others, and fail clearly once none is left.
	const lo, hi = 24000, 24099
	var held []net.Listener
	busy := map[int]bool{}
	for p := lo; p <= hi; p += 2 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // someone else's; Ports must skip it as well
		}
		held = append(held, l)
		busy[p] = true
	}
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	ports, err := pick(10, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if busy[p] || p < lo || p > hi {
			t.Fatalf("pick handed out port %d, which this test holds or is outside %d-%d", p, lo, hi)
		}
	}
	// At most 50 ports of the range are free and 10 are taken already.
	if _, err := pick(45, lo, hi); err == nil || !strings.Contains(err.Error(), "no 45 free loopback ports in 24000-24099") {
		t.Fatalf("pick(45) of at most 40 left = %v, want an error naming the count and range", err)
	}
}

func TestPortsRejectsZero(t *testing.T) {
	if _, err := Ports(0); err == nil || err.Error() != "freeport: Ports(0): want at least 1 port" {
		t.Fatalf("Ports(0) = %v, want an error naming the count", err)
	}
}

// Command bench measures this project side by side with its peers and with
// raw ceilings (the store alone), and prints a table with ratios:
//
//	go run ./bench memory            # one scenario
//	go run ./bench all -json out.json
//	go run ./bench memory -svg bench/memory.svg
//	go run ./bench memory -quick     # tiny workload: does everything run?
//
// Scenarios register themselves in init functions (see registry.go and
// README.md in this directory). Every system runs in a child process of its
// own (see runner.go), interleaved over repetitions; the table shows
// medians.
package main

import (
	"os"

	"github.com/eventsourced-go/eventsourced/internal/natscluster"
)

func main() {
	natscluster.RunIfChild() // a nats-server process of the cluster scenario
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Env is what a System.Run gets: the run's settings and the instruments.
type Env struct {
	// Quick asks for a tiny workload (the smoke test, -quick).
	Quick bool
	// Rep is the repetition, from 0.
	Rep int

	progress func(done, total int64)

	mu   sync.Mutex // guards recs
	recs []*Recorder
}

// Scale returns full, or quick when the run is -quick.
func (e *Env) Scale(full, quick int) int {
	if e.Quick {
		return quick
	}
	return full
}

// Progress reports how far the run is; the parent prints it at most once a
// second. Calling it often is cheap.
func (e *Env) Progress(done, total int64) {
	if e.progress != nil {
		e.progress(done, total)
	}
}

// Recorder collects latency samples of one goroutine. Get one per goroutine
// with [Env.Recorder]; it is not safe for concurrent use.
type Recorder struct{ samples []int64 }

// Recorder returns a new recorder whose samples go into the run's latency
// percentiles. sizeHint is the expected number of samples.
func (e *Env) Recorder(sizeHint int) *Recorder {
	r := &Recorder{samples: make([]int64, 0, sizeHint)}
	e.mu.Lock()
	e.recs = append(e.recs, r)
	e.mu.Unlock()
	return r
}

// Record adds one latency sample.
func (r *Recorder) Record(d time.Duration) { r.samples = append(r.samples, int64(d)) }

// Reset drops the samples recorded so far (after a warm-up).
func (r *Recorder) Reset() { r.samples = r.samples[:0] }

// Percentiles are latencies in nanoseconds.
type Percentiles struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50_ns"`
	P99   int64 `json:"p99_ns"`
	P999  int64 `json:"p999_ns"`
	Max   int64 `json:"max_ns"`
}

// percentiles merges every recorder's samples; exact, nearest rank.
func (e *Env) percentiles() Percentiles {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.recs {
		n += len(r.samples)
	}
	if n == 0 {
		return Percentiles{}
	}
	all := make([]int64, 0, n)
	for _, r := range e.recs {
		all = append(all, r.samples...)
	}
	slices.Sort(all)
	at := func(q float64) int64 {
		i := int(q*float64(n)+0.999999) - 1
		return all[min(max(i, 0), n-1)]
	}
	return Percentiles{Count: int64(n), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: all[n-1]}
}

// sampleEvery is how often Drive times a call: reading the clock costs 100
// to 200 ns on a virtual machine, a noticeable share of a fast system's
// call, so timing every call would shrink the ratios between systems.
const sampleEvery = 8

// Drive runs a closed loop: callers goroutines, caller c calling op(ctx, c,
// i) for i in [0, perCaller), each call waited for before the next, every
// sampleEvery-th call timed for the latency percentiles.
// It returns the Result of the loop (Ops = completed calls, Elapsed = wall
// time from the first call to the last reply). The first error stops every
// caller and is returned.
//
// If ctx has a deadline (see [Budget]) and it passes, the callers stop and
// Drive returns what was done by then, with a note: a system too slow to
// finish the workload in time is measured on the part it did.
func Drive(ctx context.Context, env *Env, callers, perCaller int, op func(ctx context.Context, caller, i int) error) (Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	total := int64(callers) * int64(perCaller)
	var done atomic.Int64
	var wg sync.WaitGroup
	recs := make([]*Recorder, callers)
	for c := range recs {
		recs[c] = env.Recorder(perCaller/sampleEvery + 1)
	}
	start := make(chan struct{})
	for c := range callers {
		wg.Go(func() {
			rec := recs[c]
			local := int64(0) // calls not yet added to done
			defer func() { done.Add(local) }()
			<-start
			for i := range perCaller {
				if ctx.Err() != nil {
					return
				}
				// Every sampleEvery-th call is timed: two clock reads
				// per call would add the harness's cost to every system.
				timed := (i+c)%sampleEvery == 0
				var t0 time.Time
				if timed {
					t0 = time.Now()
				}
				if err := op(ctx, c, i); err != nil {
					if ctx.Err() == nil {
						cancel(fmt.Errorf("caller %d call %d: %w", c, i, err))
					}
					return
				}
				if timed {
					rec.Record(time.Since(t0))
				}
				// One shared counter update per 64 calls keeps the
				// harness off the cache line the systems contend for.
				if local++; local == 64 {
					env.Progress(done.Add(local), total)
					local = 0
				}
			}
		})
	}
	runtime.GC()
	sw := startStopwatch()
	close(start)
	wg.Wait()
	elapsed, cpu := sw.stop()
	n := done.Load()
	res := Result{Ops: n, Elapsed: elapsed, CPU: cpu}
	if err := context.Cause(ctx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) || n == 0 {
			return Result{}, err
		}
		res.Notes = append(res.Notes, "too slow for the whole workload: measured on the part done within its time budget (see done%)")
		res.Metrics = map[string]float64{"done%": 100 * float64(n) / float64(total)}
		return res, nil
	}
	env.Progress(total, total)
	return res, nil
}

// Budget returns ctx limited to d (and -quick: d/10): the time a system
// gets for a workload, after which [Drive] measures what was done.
func Budget(ctx context.Context, env *Env, d time.Duration) (context.Context, context.CancelFunc) {
	if env.Quick {
		d /= 10
	}
	return context.WithTimeout(ctx, d)
}

// stopwatch measures the wall time and the process's CPU time (user +
// system, every thread) of a part of a run.
type stopwatch struct {
	wall time.Time
	cpu  time.Duration
}

// startStopwatch starts measuring.
func startStopwatch() stopwatch { return stopwatch{wall: time.Now(), cpu: processCPU()} }

// stop returns the wall time and the CPU time since start.
func (s stopwatch) stop() (wall, cpu time.Duration) {
	return time.Since(s.wall), processCPU() - s.cpu
}

// processCPU returns the user+system CPU time of this process so far
// (getrusage RUSAGE_SELF: every thread, children not included), or 0 where
// getrusage fails.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM),
// or 0 where there is no /proc.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		fields := strings.Fields(line[len(field)+1:])
		if len(fields) == 0 {
			return 0
		}
		kb, _ := strconv.ParseInt(fields[0], 10, 64)
		return kb << 10
	}
	return 0
}

// RSS returns the process's resident set size now, in bytes.
func RSS() int64 { return procStatus("VmRSS") }

// PeakRSS returns the process's peak resident set size, in bytes.
func PeakRSS() int64 { return procStatus("VmHWM") }

// SettledRSS runs the garbage collector, returns freed memory to the OS and
// returns the RSS after it: the memory the live data really holds.
func SettledRSS() int64 {
	for range 2 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	return RSS()
}

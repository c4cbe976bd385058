// Command provbench measures the provisioner against the performance
// targets of docs/BENCHMARKS.md: for each scenario it starts an in-process
// NATS server with JetStream, the CloudNexus simulator and the worker (in
// process, or bin/provisioner as a child process for the scale scenario),
// publishes the requests, waits for every terminal event, and prints a
// table. A full run writes docs/BENCHMARKS.md; -quick runs every scenario at
// a small size and only checks that every job ends.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code: 0 when every job of
// every scenario run reached a terminal event, 1 otherwise, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "every scenario at a small size; checks only that every job ends, and writes no report")
	only := fs.String("scenario", "", "run only this scenario: "+strings.Join(scenarioNames(), ", "))
	out := fs.String("out", "docs/BENCHMARKS.md", "report to write after a full run of every scenario (with -scenario, only when given explicitly)")
	provisioner := fs.String("provisioner", "", "the provisioner binary for the scale scenario; built from cmd/provisioner when empty")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the throughput scenario's first worker run to this file, and of its first ceiling run to this file with .ceiling added")
	rounds := fs.Int("rounds", 0, "throughput scenario: this many interleaved ceiling and worker runs (default 9, quick 1)")
	timescale := fs.Float64("poll-timescale", 0, "polling scenario: run provisioning times and the worker's poll settings this many times faster (default 5, quick 40)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provbench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *only != "" && !slices.Contains(scenarioNames(), *only) {
		fmt.Fprintf(stderr, "provbench: unknown scenario %q (have %s)\n", *only, strings.Join(scenarioNames(), ", "))
		return 2
	}
	if *rounds < 0 || *timescale < 0 {
		fmt.Fprintln(stderr, "provbench: -rounds and -poll-timescale must not be negative")
		return 2
	}
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })

	b := &bench{quick: *quick, sz: fullSizes(), provisioner: *provisioner, cpuprofile: *cpuprofile, progress: stderr}
	if *quick {
		b.sz = quickSizes()
	}
	if *timescale > 0 {
		b.sz.pollTimeScale = *timescale
	}
	if *rounds > 0 {
		b.sz.throughputRounds = *rounds
	}
	tmp, err := os.MkdirTemp("", "provbench-")
	if err != nil {
		fmt.Fprintf(stderr, "provbench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	b.tmp = tmp

	started := time.Now()
	var results []*result
	for _, s := range scenarios() {
		if *only != "" && s.name != *only {
			continue
		}
		fmt.Fprintf(stderr, "== %s: %s\n", s.name, s.title)
		t0 := time.Now()
		r := s.run(b, ctx)
		r.name, r.title, r.wall = s.name, s.title, time.Since(t0)
		if r.err != nil {
			fmt.Fprintf(stderr, "   %s failed: %v\n", s.name, r.err)
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	total := time.Since(started)
	if *quick {
		// The sizes are too small for the targets to mean anything: a quick
		// run checks only that every job ends.
		for _, r := range results {
			for i := range r.figures {
				r.figures[i].met = nil
			}
		}
	}
	fmt.Fprintln(stdout)
	printTable(stdout, results)

	code := 0
	for _, r := range results {
		if !r.complete() {
			fmt.Fprintf(stderr, "provbench: scenario %s: %d of %d jobs terminal\n", r.name, r.done, r.jobs)
			code = 1
		}
	}
	if *quick || (*only != "" && !outSet) || *out == "" || ctx.Err() != nil {
		return code
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintf(stderr, "provbench: %v\n", err)
		return 1
	}
	command := "provbench " + strings.Join(args, " ")
	if err := writeReport(f, describeMachine(), started, total, strings.TrimSpace(command), results); err != nil {
		_ = f.Close()
		fmt.Fprintf(stderr, "provbench: write %s: %v\n", *out, err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "provbench: write %s: %v\n", *out, err)
		return 1
	}
	fmt.Fprintf(stdout, "\nreport written to %s\n", *out)
	return code
}

// sizes are the knobs of a run; fullSizes are the issue's, quickSizes keep
// every scenario to a few seconds.
type sizes struct {
	throughputJobs, throughputConcurrency int
	throughputRounds                      int // ceiling and worker runs, interleaved

	latencyJobs, latencyConcurrency                int
	latencyCreate, latencyGet, latencyProvisioning time.Duration

	scaleJobs         int
	scaleProvisioning time.Duration

	pollJobs      int
	pollArrivals  time.Duration // real-time span over which the requests arrive
	pollTimeScale float64       // how many times faster than real the run goes

	stormJobs, stormConcurrency int
	stormDuration, retryAfter   time.Duration
	stormProvisioning           time.Duration
}

func fullSizes() sizes {
	return sizes{
		throughputJobs: 20000, throughputConcurrency: 256, throughputRounds: 9,
		latencyJobs: 5000, latencyConcurrency: 500,
		latencyCreate: 100 * time.Millisecond, latencyGet: 50 * time.Millisecond, latencyProvisioning: 2 * time.Second,
		scaleJobs: 10000, scaleProvisioning: 60 * time.Second,
		pollJobs: 360, pollArrivals: 10 * time.Minute, pollTimeScale: 5,
		stormJobs: 200, stormConcurrency: 64, stormDuration: 30 * time.Second, retryAfter: 2 * time.Second,
		stormProvisioning: time.Second,
	}
}

func quickSizes() sizes {
	return sizes{
		throughputJobs: 500, throughputConcurrency: 64, throughputRounds: 1,
		latencyJobs: 400, latencyConcurrency: 100,
		latencyCreate: 20 * time.Millisecond, latencyGet: 10 * time.Millisecond, latencyProvisioning: 300 * time.Millisecond,
		scaleJobs: 200, scaleProvisioning: 3 * time.Second,
		pollJobs: 36, pollArrivals: 2 * time.Minute, pollTimeScale: 40,
		stormJobs: 30, stormConcurrency: 16, stormDuration: 3 * time.Second, retryAfter: time.Second,
		stormProvisioning: 200 * time.Millisecond,
	}
}

// bench is one run of the harness.
type bench struct {
	quick       bool
	sz          sizes
	provisioner string
	cpuprofile  string
	progress    io.Writer
	tmp         string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "   "+format+"\n", args...)
}

type scenario struct {
	name, title string
	run         func(b *bench, ctx context.Context) *result
}

func scenarios() []scenario {
	return []scenario{
		{"throughput", "jobs per second against the broker's limit", (*bench).throughput},
		{"latency", "utilisation when the API is slow", (*bench).latency},
		{"scale", "10,000 provisions in flight on one replica", (*bench).scale},
		{"polling", "GET calls and detection delay against peers' waiters", (*bench).polling},
		{"overload", "a 503 storm with Retry-After", (*bench).overload},
	}
}

func scenarioNames() []string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	return names
}

package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestQuick runs every scenario at the quick size, the scale scenario with
// bin/provisioner built from this tree as a child process: each must end
// with every job terminal, and no report is written. It asserts no timing.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario")
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-quick", "-out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("provbench -quick exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, name := range scenarioNames() {
		if !strings.Contains(stdout.String(), "\n"+name+" ") {
			t.Errorf("table has no line for scenario %s:\n%s", name, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "ERROR") {
		t.Errorf("a scenario failed:\n%s", stdout.String())
	}
	if strings.Contains(stdout.String(), " met\n") || strings.Contains(stdout.String(), "not met") {
		t.Errorf("a quick run judged a target; its sizes are too small for that:\n%s", stdout.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("-quick wrote %s (stat: %v); it must not write a report", out, err)
	}
}

// TestThroughputProfiles checks that -cpuprofile writes a profile of the
// throughput scenario's worker run and one of its ceiling run, side by side.
func TestThroughputProfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the throughput scenario")
	}
	path := filepath.Join(t.TempDir(), "cpu.prof")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-quick", "-scenario", "throughput", "-cpuprofile", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("provbench exited %d\nstderr:\n%s", code, stderr.String())
	}
	for _, p := range []string{path, path + ".ceiling"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("profile: %v", err)
		}
		// A CPU profile is a gzipped protocol buffer.
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s is not a gzipped profile (%d bytes)", p, len(b))
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown scenario", []string{"-scenario", "nope"}},
		{"unknown flag", []string{"-nope"}},
		{"argument", []string{"extra"}},
		{"negative rounds", []string{"-rounds", "-1"}},
		{"negative time scale", []string{"-poll-timescale", "-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr.String())
			}
		})
	}
}

func TestAWSWaiterReplay(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name               string
		provision          time.Duration
		calls              int
		minDelay, maxDelay time.Duration // inclusive bounds
	}{
		// Calls at 0 and 15s are fixed; then 15s + [15s, 30s), + [15s, 60s), ...
		{name: "running at once", provision: 0, calls: 1, minDelay: 0, maxDelay: 0},
		{name: "running before the second call", provision: 10 * s, calls: 2, minDelay: 5 * s, maxDelay: 5 * s},
		{name: "running at the second call", provision: 15 * s, calls: 2, minDelay: 0, maxDelay: 0},
		{name: "third call", provision: 16 * s, calls: 3, minDelay: 14 * s, maxDelay: 29 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(50) {
				calls, delay := awsWaiter(15*s, 120*s)(tc.provision, rand.New(rand.NewPCG(seed, 1)))
				if calls != tc.calls || delay < tc.minDelay || delay > tc.maxDelay {
					t.Fatalf("seed %d: %d calls, delay %s; want %d calls, delay in [%s, %s]", seed, calls, delay, tc.calls, tc.minDelay, tc.maxDelay)
				}
			}
		})
	}
}

func TestAWSDelay(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name     string
		attempt  int64
		min, max time.Duration // the delay is in [min, max)
	}{
		{"first: the minimum, no jitter", 1, 15 * s, 15*s + 1},
		{"second: up to twice", 2, 15 * s, 30 * s},
		{"third: up to four times", 3, 15 * s, 60 * s},
		{"fourth: the attempt ceiling, up to the maximum", 4, 15 * s, 120 * s},
		{"later: the maximum", 9, 15 * s, 120 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			seenHigh := false
			for range 2000 {
				d := awsDelay(tc.attempt, 15*s, 120*s, rng)
				if d < tc.min || d >= tc.max {
					t.Fatalf("delay %s outside [%s, %s)", d, tc.min, tc.max)
				}
				seenHigh = seenHigh || d > tc.max-(tc.max-tc.min)/10
			}
			if !seenHigh && tc.max-tc.min > s {
				t.Errorf("no delay in the top tenth of [%s, %s): the jitter does not reach the exponential delay", tc.min, tc.max)
			}
		})
	}
}

func TestTerraformReplay(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		provision time.Duration
		calls     int
		delay     time.Duration
	}{
		// Refreshes at 0, 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, then every 10s: 22.6, 32.6, ...
		{"running at once", 0, 1, 0},
		{"one second", time.Second, 4, 400 * ms},
		{"at a refresh", 3 * time.Second, 5, 0},
		{"capped at 10s", 30 * time.Second, 9, 2600 * ms},
		{"two minutes", 120 * time.Second, 18, 2600 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, delay := terraformStateChange(tc.provision, nil)
			if calls != tc.calls || delay != tc.delay {
				t.Errorf("%d calls, delay %s; want %d, %s", calls, delay, tc.calls, tc.delay)
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	status := []byte("Name:\tprovisioner\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t12\n")
	m, err := parseStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if m.rss != 40960<<10 || m.hwm != 51200<<10 {
		t.Errorf("parseStatus = %+v, want rss %d, hwm %d", m, 40960<<10, 51200<<10)
	}
	if _, err := parseStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("parseStatus without VmRSS and VmHWM: no error")
	}
	// utime 250 and stime 50 ticks; the command name holds spaces and ')'.
	stat := []byte("4242 (prov isioner)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 2500 18446744073709551615")
	cpu, err := parseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; cpu != want {
		t.Errorf("parseStat = %s, want %s", cpu, want)
	}
}

// TestRoundRatios checks that the throughput target pairs each worker run
// with the ceiling run of its own round: here the medians of the two kinds
// of run come from different rounds, and their ratio (90/200) differs from
// the median of the rounds' ratios (0.6, 0.45, 0.5).
func TestRoundRatios(t *testing.T) {
	ceils := []throughputRun{{rate: 100}, {rate: 200}, {rate: 400}}
	works := []throughputRun{{rate: 60}, {rate: 90}, {rate: 200}}
	ratios := roundRatios(ceils, works)
	if want := []float64{0.6, 0.45, 0.5}; !slices.Equal(ratios, want) {
		t.Fatalf("roundRatios = %v, want %v", ratios, want)
	}
	if got := median(ratios); got != 0.5 {
		t.Errorf("median = %v, want 0.5", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of an even number = %v, want 2.5", got)
	}
	if got, want := describeRatios(ratios), "45.0%, 50.0%, 60.0%"; got != want {
		t.Errorf("describeRatios = %q, want %q", got, want)
	}
}

func TestReport(t *testing.T) {
	results := []*result{
		{name: "throughput", title: "jobs per second", jobs: 10, done: 10, wall: time.Second, figures: []figure{
			goal("worker jobs/s", "3500", "ceiling 5000", ">= 3000", true),
			goal("ratio", "40%", "", ">= 50%", false),
			info("round trips", "4"),
		}, notes: []string{"a note"}},
		{name: "scale", title: "in flight", jobs: 10, done: 7, err: context.DeadlineExceeded},
	}
	m := machine{cpu: "Test CPU", cores: 2, memory: "1.0 GiB", os: "TestOS", goVersion: "go1.99", deps: map[string]string{
		"github.com/nats-io/nats-server/v2": "v2.99.0", "github.com/nats-io/nats.go": "v1.99.0"}}
	var b bytes.Buffer
	if err := writeReport(&b, m, time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC), time.Minute, "provbench", results); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	for _, want := range []string{
		"2030-01-02 03:04 UTC", "Test CPU, 2 cores", "1.0 GiB", "TestOS", "go1.99", "v2.99.0", "v1.99.0",
		"| throughput | worker jobs/s | 3500 | ceiling 5000 | >= 3000 | **met** |",
		"| throughput | ratio | 40% |  | >= 50% | **not met** |",
		"**The scenario did not complete:**", "7 of 10 requests", "- a note",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
	summary, _, _ := strings.Cut(doc[strings.Index(doc, "## Summary"):], "## throughput")
	if strings.Contains(summary, "round trips") {
		t.Errorf("an information figure appears in the summary of targets:\n%s", summary)
	}
	if results[0].complete() != true || results[1].complete() != false {
		t.Error("complete() does not tell a scenario with every job terminal from one without")
	}
}

package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// secret is the API key every worker of the suite runs with. secretMark is
// a distinctive part of it: finding it in a log line or an event is a leak,
// even of a truncated key.
const (
	secret     = "cn_live_FAULTSUITE_SECRET_5f0c9e27d41ab386"
	secretMark = "FAULTSUITE_SECRET"
)

// suite is what every case shares: the worker binary, the seed of the random
// choices, and the report rows. TestFaults owns it; cases only append rows.
type suite struct {
	root string // the module root
	bin  string // the provisioner binary built from it
	seed uint64
	// orders maps a case's name to its place in the report; set before the
	// cases start, read only.
	orders map[string]string

	mu    sync.Mutex
	rows  []row
	scans scanTotals
}

// row is one line of the report: one case and what it measured.
type row struct {
	order    string // sort key: the case number and a letter
	name     string
	injected string
	requests int
	lost     int
	dupInst  int
	dupTerm  int
	result   string
}

// scanTotals counts what the secret check looked at across all cases.
type scanTotals struct {
	logLines, events, leaks, cases int
}

// TestFaults runs every fault case, each against its own NATS server (or
// cluster), simulator and worker processes, in parallel; then, with
// FAULTS_REPORT set and every case passed, writes the report.
func TestFaults(t *testing.T) {
	s := newSuite(t)
	cases := []struct {
		name, order string
		run         func(t *testing.T, s *suite)
	}{
		{name: "sigkill-random-points-seed-1", order: "01a", run: func(t *testing.T, s *suite) { testSIGKILL(t, s, s.seed) }},
		{name: "sigkill-random-points-seed-2", order: "01b", run: func(t *testing.T, s *suite) { testSIGKILL(t, s, s.seed+1) }},
		{name: "sigkill-random-points-seed-3", order: "01c", run: func(t *testing.T, s *suite) { testSIGKILL(t, s, s.seed+2) }},
		{name: "three-replicas-one-killed", order: "02", run: testThreeReplicasOneKilled},
		{name: "frozen-replica-thawed-after-its-leases", order: "02b", run: testFrozenReplica},
		{name: "create-500-after-creating", order: "03a", run: func(t *testing.T, s *suite) { testAmbiguousCreate(t, s, false, false) }},
		{name: "create-dropped-after-creating", order: "03b", run: func(t *testing.T, s *suite) { testAmbiguousCreate(t, s, true, false) }},
		{name: "create-stream-reset-after-creating-h2c", order: "03c", run: func(t *testing.T, s *suite) { testAmbiguousCreate(t, s, true, true) }},
		{name: "storm-503-create-and-get", order: "04a", run: func(t *testing.T, s *suite) { testStorm(t, s, 503) }},
		{name: "storm-500-create-and-get", order: "04b", run: func(t *testing.T, s *suite) { testStorm(t, s, 500) }},
		{name: "overload-one-create-per-retry-after", order: "04c", run: testOverload},
		{name: "retries-exhausted-on-last-attempt", order: "04d", run: testRetriesExhausted},
		{name: "nats-server-restart", order: "05", run: testNATSRestart},
		{name: "cluster-leader-node-shut-down", order: "06", run: testClusterLeaderLoss},
		{name: "sigterm-with-jobs-in-flight", order: "07", run: testSIGTERM},
		{name: "wrong-api-key-then-right", order: "08", run: testWrongKey},
		{name: "duplicate-and-conflicting-requests", order: "09", run: testDuplicates},
		{name: "poison-input", order: "10", run: testPoison},
	}
	s.orders = make(map[string]string, len(cases))
	for _, c := range cases {
		s.orders[c.name] = c.order
	}
	t.Run("case", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.run(t, s)
			})
		}
	})
	s.secretRow()
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		if t.Failed() {
			t.Logf("FAULTS_REPORT: not written, the suite failed")
			return
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(s.root, path)
		}
		if err := os.WriteFile(path, s.report(), 0o644); err != nil {
			t.Fatalf("write report: %v", err)
		}
		t.Logf("report written to %s", path)
	}
}

// newSuite builds the worker binary from the module the test runs in and
// picks the seed: FAULTS_SEED when set, the clock otherwise.
func newSuite(t *testing.T) *suite {
	t.Helper()
	s := &suite{root: moduleRoot(t)}
	s.bin = filepath.Join(t.TempDir(), "provisioner")
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the worker: %v", err)
	}
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", s.bin, "./cmd/provisioner")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = s.root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	s.seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	if v := os.Getenv("FAULTS_SEED"); v != "" {
		if s.seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("FAULTS_SEED %q: %v", v, err)
		}
	}
	t.Logf("seed %d: FAULTS_SEED=%d repeats this run's random choices", s.seed, s.seed)
	return s
}

// moduleRoot walks up from the working directory (the package directory
// under go test) to the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func (s *suite) record(r row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, r)
}

func (s *suite) addScan(logLines, events, leaks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scans.logLines += logLines
	s.scans.events += events
	s.scans.leaks += leaks
	s.scans.cases++
}

// secretRow adds case 11, the API key check summed over every case.
func (s *suite) secretRow() {
	s.mu.Lock()
	sc := s.scans
	s.mu.Unlock()
	result := "pass"
	if sc.leaks > 0 {
		result = fmt.Sprintf("FAIL: %d occurrences", sc.leaks)
	}
	s.record(row{
		order:    "11",
		name:     "API key in logs and events",
		injected: fmt.Sprintf("every case above: the key searched for in %d log lines of every worker process and in %d events, %d cases", sc.logLines, sc.events, sc.cases),
		requests: -1,
		result:   result,
	})
}

// report renders the rows as the Markdown of docs/RELIABILITY.md.
func (s *suite) report() []byte {
	s.mu.Lock()
	rows := slices.Clone(s.rows)
	s.mu.Unlock()
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.order, b.order) })

	var b strings.Builder
	b.WriteString(`# Reliability: the fault-injection suite

This file is written by the suite itself (` + "`faults/`" + `): regenerate it with ` + "`make test-faults`" + `.
Do not edit it by hand.

The promise (docs/CONTRACT.md): under any crash, restart, redelivery, duplicate message or API fault, one
` + "`request_id`" + ` leads to at most one instance and to exactly one terminal event (` + "`completed`" + ` or
` + "`failed`" + `) in ` + "`PROVISION_EVENTS`" + `.

Each case runs the real worker binary (` + "`cmd/provisioner`" + `, built with the race detector) as one or
more subprocesses against an in-process NATS server with JetStream (a three-node cluster with R3 streams
in case 6) and the CloudNexus simulator, injects its fault while the workers run, and then checks one
invariant over every request it published:

- **exactly one instance** in the simulator per request (counted by name, deleted ones included; none
  for a request that could not be sent to the API), and no instance for any other name;
- **exactly one terminal event** per request in ` + "`PROVISION_EVENTS`" + ` (the stream read message by
  message), of the expected kind and code; every further publish of it seen on the wire byte-identical
  to the stored one; rejected events exactly as expected;
- the job record in ` + "`provision_jobs`" + ` finished (its terminal event stored, byte for byte) and its
  lease released;
- the requests stream **drained** (no message left);
- every worker still running at the end **exits 0** on SIGTERM, and no data race is reported;
- the **API key** in no log line of any worker process and in no event (row 11);
- no goroutine leaked by the test process (goleak).

*Requests* counts the distinct request_ids a case published (copies of them, and messages without a valid
request_id, are described under *injected*). *Lost* counts requests without a terminal event, *duplicate
instances* instances beyond one per request, *duplicate terminal events* terminal events beyond one per
request.

`)
	fmt.Fprintf(&b, "## Run\n\n- date: %s\n- machine: %s/%s, %d CPUs, %s\n- race detector: %v\n- seed: %d (`FAULTS_SEED=%d make test-faults` repeats the random choices; timing still varies)\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), raceEnabled, s.seed, s.seed)
	b.WriteString("## Results\n\n")
	b.WriteString("| # | case | injected | requests | lost | duplicate instances | duplicate terminal events | result |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rows {
		reqs, lost, di, dt := strconv.Itoa(r.requests), strconv.Itoa(r.lost), strconv.Itoa(r.dupInst), strconv.Itoa(r.dupTerm)
		if r.requests < 0 {
			reqs, lost, di, dt = "all", "–", "–", "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.order, cell(r.name), cell(r.injected), reqs, lost, di, dt, cell(r.result))
	}
	return []byte(b.String())
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

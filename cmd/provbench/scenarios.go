package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// benchRegions and benchPlans are what the scenarios' requests name.
var benchRegions = []string{"us-east-1", "eu-west-1", "ap-south-1"}

// inprocRun is one in-process worker run over a set of requests.
type inprocRun struct {
	broker *broker
	sim    *simAPI
	col    *collector
	w      *inprocWorker
	start  time.Time     // just before the worker started
	cpu0   time.Duration // the process's CPU time then
	heap0  heapStats     // and its heap counts
	// ncClose closes the connection of the collector.
	ncClose func()
	js      jetstream.JetStream // on that connection
}

// startInproc starts a broker and the simulator, publishes reqs, then
// starts the worker; the collector waits for want jobs (with want 0 there is
// no collector). keepBodies keeps terminal events' bodies. beforeStart, when set, runs just before the
// worker starts.
func (b *bench) startInproc(ctx context.Context, want int, reqs []jobs.Request, sc cnsim.Config, wc worker.Config, ac apiclient.Config, keepBodies bool, beforeStart func()) (*inprocRun, error) {
	r := &inprocRun{}
	var err error
	if r.broker, err = startBroker(); err != nil {
		return nil, err
	}
	if r.sim, err = startSim(sc); err != nil {
		r.close()
		return nil, err
	}
	nc, js, err := r.broker.connect("provbench")
	if err != nil {
		r.close()
		return nil, err
	}
	if err := ensureStreams(ctx, js); err != nil {
		nc.Close()
		r.close()
		return nil, err
	}
	r.js = js
	if want > 0 {
		if r.col, err = newCollector(nc, want, keepBodies, false); err != nil {
			nc.Close()
			r.close()
			return nil, err
		}
	}
	if err := publishAll(ctx, js, reqs); err != nil {
		r.close()
		nc.Close()
		return nil, err
	}
	if beforeStart != nil {
		beforeStart()
	}
	r.ncClose = nc.Close
	r.start, r.cpu0, r.heap0 = time.Now(), selfCPU(), readHeap()
	if r.w, err = startWorker(r.broker, r.sim.url(), wc, ac); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *inprocRun) close() {
	if r.w != nil {
		r.w.stop()
	}
	if r.col != nil {
		r.col.close()
	}
	if r.ncClose != nil {
		r.ncClose()
	}
	if r.sim != nil {
		r.sim.close()
	}
	if r.broker != nil {
		r.broker.close()
	}
}

func (r *inprocRun) fill(res *result) {
	if r.col != nil {
		_, res.done, res.failed = r.col.counts()
	}
}

// throughput: instant provisioning, so a job is only broker round trips, an
// HTTP create and the worker's own work; compared with the broker's rate for
// the same round trips. Both rates move with whatever else the shared
// machine runs, so the two are measured in interleaved rounds, and the
// target is judged on the median of the rounds' ratios.
func (b *bench) throughput(ctx context.Context) *result {
	n, c, rounds := b.sz.throughputJobs, b.sz.throughputConcurrency, b.sz.throughputRounds
	res := &result{jobs: n}
	reqs := make([]jobs.Request, n)
	for i := range reqs {
		reqs[i] = request("tp", i, "standard-4", benchRegions[i%len(benchRegions)])
	}

	b.logf("%d rounds of %d jobs at concurrency %d; ceiling: %d broker round trips per job (%s)", rounds, n, c, roundTrips(workerRecipe), describeRecipe(workerRecipe))
	var ceils, works []throughputRun
	ceiling := func() error {
		profile := ""
		if len(ceils) == 0 && b.cpuprofile != "" {
			profile = b.cpuprofile + ".ceiling"
		}
		ceil, err := measureCeiling(ctx, reqs, c, workerRecipe, profile)
		if err != nil {
			return err
		}
		b.logf("ceiling: %.0f jobs/s, CPU %.0f µs per job", ceil.rate(), ceil.cpuPerJob())
		ceils = append(ceils, throughputRun{rate: ceil.rate(), cpuPerJob: ceil.cpuPerJob(), heap: ceil.heap})
		return nil
	}
	work := func(profile bool) error {
		w, err := b.throughputWorker(ctx, reqs, c, apiclient.Config{UnencryptedHTTP2: true}, profile, res)
		if err != nil {
			return err
		}
		b.logf("worker: %.0f jobs/s, CPU %.0f µs per job", w.rate, w.cpuPerJob)
		works = append(works, w)
		return nil
	}
	for r := range rounds {
		// Alternate which goes first, so that a drift of the machine's
		// speed during the rounds weighs on both alike.
		steps := []func() error{ceiling, func() error { return work(r == 0) }}
		if r%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				res.err = err
				return res
			}
		}
	}
	// The same worker over HTTP/1.1, once, for the record.
	h1, err := b.throughputWorker(ctx, reqs, c, apiclient.Config{}, false, res)
	if err != nil {
		res.err = err
		return res
	}
	b.logf("worker over HTTP/1.1: %.0f jobs/s, CPU %.0f µs per job", h1.rate, h1.cpuPerJob)

	ceil, w := medianRun(ceils), medianRun(works)
	ratios := roundRatios(ceils, works)
	ratio := median(ratios)
	res.figures = []figure{
		goal("worker / ceiling, median of the rounds' ratios", pct(ratio), "each round's ceiling run, next to its worker run", ">= 0.5 x ceiling", ratio >= 0.5),
		info("the rounds' ratios, lowest to highest", describeRatios(ratios)),
		goal("worker jobs/s, absolute, median", fmt.Sprintf("%.0f", w.rate), fmt.Sprintf("broker ceiling %.0f jobs/s, median", ceil.rate), ">= 3000 jobs/s", w.rate >= 3000),
		info("ratio of the median rates", pct(w.rate/ceil.rate)),
		info("rounds (ceiling, worker jobs/s)", describeRounds(ceils, works)),
		info("CPU per job, whole process (broker, simulator, worker), median", fmt.Sprintf("%.0f µs", w.cpuPerJob)),
		info("CPU per job of the ceiling loop, whole process, median", fmt.Sprintf("%.0f µs", ceil.cpuPerJob)),
		info("heap allocated per job, whole process, median runs", fmt.Sprintf("worker run %.1f KB (%d collections), ceiling loop %.1f KB (%d collections)",
			float64(w.heap.bytes)/1024/float64(n), w.heap.cycles, float64(ceil.heap.bytes)/1024/float64(n), ceil.heap.cycles)),
		info("worker over HTTP/1.1 instead of h2c, one run", fmt.Sprintf("%.0f jobs/s (%s of the median ceiling), CPU %.0f µs per job", h1.rate, pct(h1.rate/ceil.rate), h1.cpuPerJob)),
		info("broker round trips per job", fmt.Sprintf("%d (%s)", roundTrips(workerRecipe), describeRecipe(workerRecipe))),
		info("API calls per job", fmt.Sprintf("%.2f create, %.2f get", w.creates, w.gets)),
	}
	res.notes = []string{
		fmt.Sprintf("%d requests published before the worker starts; worker concurrency %d; simulator `Instant` (the create answer is already `running`, so a job needs no GET); jobs/s from the worker's start to the last terminal event.", n, c),
		fmt.Sprintf("%d rounds, each a ceiling run and a worker run on fresh servers, the order alternating from round to round. The target is judged on the median of the rounds' ratios: the machine's speed drifts by a quarter or more between runs minutes apart, and a ratio of two runs made back to back cancels most of that drift, where the medians of the two kinds of run may come from different rounds (their ratio is shown too). The CPU profiles (-cpuprofile) are of the first worker run and of the first ceiling run (the file name with `.ceiling` added).", rounds),
		"Ceiling: the same number of requests, on a fresh in-process server with the worker's streams, consumer and bucket, worked by a minimal loop with the worker's fetch discipline and concurrency that makes exactly the worker's broker operations per job, with records and events of the worker's sizes, and nothing else (no HTTP, no JSON decoding of records).",
		"The worker runs in the harness's process with its production logger configuration (JSON, info) writing to io.Discard, and an API client configured as cmd/provisioner configures it. It reaches the simulator over HTTP/2 without TLS (`CLOUDNEXUS_API_H2C=true`), as it reaches the real API over HTTP/2 with TLS: the API's calls share multiplexed connections instead of one connection per call in flight. The HTTP/1.1 run shows what that is worth here.",
		"On a shared machine both rates vary from run to run by a third or more; CPU per job varies less. The difference between the two CPU figures is what the worker adds to the broker's work: the HTTP round trip to the simulator (client and server, both in this process), JSON, logging and the job's own logic.",
	}
	return res
}

// throughputRun is one run of the throughput scenario.
type throughputRun struct {
	rate, cpuPerJob float64
	creates, gets   float64   // API calls per job
	heap            heapStats // the whole process's during the run
}

// throughputWorker runs the worker over reqs on fresh servers with the
// instant simulator and measures its rate and CPU. With profile it writes
// a CPU profile of the run to b.cpuprofile. It fills res's counts.
func (b *bench) throughputWorker(ctx context.Context, reqs []jobs.Request, c int, ac apiclient.Config, profile bool, res *result) (throughputRun, error) {
	n := len(reqs)
	var stopProfile func()
	beforeStart := func() {
		if profile {
			stopProfile = startCPUProfile(b.cpuprofile)
		}
	}
	// No collector: the server delivering every terminal event to the
	// harness, and the harness decoding it, would be counted in the worker's
	// CPU and not in the ceiling's. The events stream tells when all are in.
	run, err := b.startInproc(ctx, 0, reqs, cnsim.Config{Instant: true}, worker.Config{Concurrency: c}, ac, false, beforeStart)
	if err != nil {
		return throughputRun{}, err
	}
	defer run.close()
	last, err := waitStored(ctx, run.js, n, time.Duration(n)*time.Millisecond+time.Minute)
	cpu, heap := selfCPU()-run.cpu0, readHeap().since(run.heap0)
	if stopProfile != nil {
		stopProfile()
	}
	if err == nil {
		err = countTerminal(ctx, run.js, n, res)
	}
	if err != nil {
		return throughputRun{}, err
	}
	_, byEP := run.sim.rec.snapshot()
	return throughputRun{
		rate:      float64(n) / last.Sub(run.start).Seconds(),
		cpuPerJob: float64(cpu.Microseconds()) / float64(n),
		creates:   float64(byEP[cnsim.EndpointCreate]) / float64(n),
		gets:      float64(byEP[cnsim.EndpointGet]) / float64(n),
		heap:      heap,
	}, nil
}

// waitStored polls the events stream until the worker is done with n
// requests and returns when the last event was stored. Each job of the
// throughput scenario has a created and a terminal event, deduplicated, so
// the count reaching 2n is the end; a job that fails without a created event
// would keep it short, so the worker's consumer is checked too: nothing
// pending or unacknowledged is also the end (countTerminal then checks the
// kinds).
func waitStored(ctx context.Context, js jetstream.JetStream, n int, timeout time.Duration) (time.Time, error) {
	stream, err := js.Stream(ctx, "PROVISION_EVENTS")
	if err != nil {
		return time.Time{}, err
	}
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		info, err := stream.Info(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if info.State.Msgs >= uint64(2*n) {
			return info.State.LastTime, nil
		}
		if i%10 == 9 {
			// A fresh look-up returns the consumer's state as of now.
			if cons, err := js.Consumer(ctx, "PROVISION_REQUESTS", "provisioner"); err == nil {
				if c := cons.CachedInfo(); c.NumPending == 0 && c.NumAckPending == 0 && c.Delivered.Consumer >= uint64(n) {
					if info, err = stream.Info(ctx); err == nil {
						return info.State.LastTime, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%d events stored for %d requests after %s", info.State.Msgs, n, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countTerminal fills res's counts from the terminal events in the events
// stream, and fails unless each of n requests has one.
func countTerminal(ctx context.Context, js jetstream.JetStream, n int, res *result) error {
	var subj jobs.Subjects
	stream, err := js.Stream(ctx, "PROVISION_EVENTS")
	if err != nil {
		return err
	}
	count := func(kind jobs.Kind) (int, error) {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subj.Event(kind, ">")))
		if err != nil {
			return 0, err
		}
		return len(info.State.Subjects), nil
	}
	completed, err := count(jobs.KindCompleted)
	if err != nil {
		return err
	}
	failed, err := count(jobs.KindFailed)
	if err != nil {
		return err
	}
	res.done, res.failed = completed+failed, failed
	if res.done < n {
		return fmt.Errorf("%d of %d requests have a terminal event", res.done, n)
	}
	return nil
}

// roundRatios is each round's worker rate over its ceiling rate.
func roundRatios(ceils, works []throughputRun) []float64 {
	r := make([]float64, len(ceils))
	for i := range ceils {
		r[i] = works[i].rate / ceils[i].rate
	}
	return r
}

// median is the middle value of xs (the mean of the two middle ones of an
// even number).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

func describeRatios(ratios []float64) string {
	s := slices.Clone(ratios)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = pct(r)
	}
	return strings.Join(parts, ", ")
}

// medianRun is the run of median rate (the lower middle one of an even
// number).
func medianRun(runs []throughputRun) throughputRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b throughputRun) int { return cmp.Compare(a.rate, b.rate) })
	return s[(len(s)-1)/2]
}

func describeRounds(ceils, works []throughputRun) string {
	parts := make([]string, len(ceils))
	for i := range ceils {
		parts[i] = fmt.Sprintf("%.0f, %.0f", ceils[i].rate, works[i].rate)
	}
	return strings.Join(parts, "; ")
}

// latency: the API is slow and provisioning takes 2s, so jobs/s is bound by
// concurrency / job time; the worker should waste little of it.
func (b *bench) latency(ctx context.Context) *result {
	n, c := b.sz.latencyJobs, b.sz.latencyConcurrency
	res := &result{jobs: n}
	reqs := make([]jobs.Request, n)
	for i := range reqs {
		reqs[i] = request("lat", i, "standard-4", "eu-west-1")
	}
	sc := cnsim.Config{ProvisionDelay: b.sz.latencyProvisioning, Faults: cnsim.Faults{Latency: map[cnsim.Endpoint]time.Duration{
		cnsim.EndpointCreate: b.sz.latencyCreate, cnsim.EndpointGet: b.sz.latencyGet}}}
	run, err := b.startInproc(ctx, n, reqs, sc, worker.Config{Concurrency: c}, apiclient.Config{UnencryptedHTTP2: true}, true, nil)
	if err != nil {
		res.err = err
		return res
	}
	defer run.close()
	err = run.col.waitAll(ctx, time.Duration(n)*b.sz.latencyProvisioning/time.Duration(c)*3+time.Minute)
	run.fill(res)
	if err != nil {
		res.err = err
		return res
	}
	times := run.col.terminalTimes()
	slices.SortFunc(times, time.Time.Compare)
	// The steady window leaves out the first two waves (cold start: no
	// history of provisioning times yet, then a history learned from cold
	// polls) and the tail (fewer jobs than slots).
	i0, i1 := 2*c, n-c
	rate := float64(i1-i0) / times[i1-1].Sub(times[i0-1]).Seconds()
	jobTime := b.sz.latencyCreate + b.sz.latencyProvisioning + b.sz.latencyGet
	ideal := float64(c) / jobTime.Seconds()
	_, byEP := run.sim.rec.snapshot()
	// The jobs that ended in the steady window: how long from their first
	// claim to running.
	var durs []float64
	for _, t := range run.col.terminalsCopy() {
		var ev jobs.Event
		if t.received.After(times[i0-1]) && !t.received.After(times[i1-1]) && json.Unmarshal(t.body, &ev) == nil && ev.Kind == jobs.KindCompleted {
			durs = append(durs, float64(ev.DurationMS))
		}
	}
	b.logf("steady %.1f jobs/s, ideal %.1f", rate, ideal)
	res.figures = []figure{
		goal("jobs/s in the steady window", fmt.Sprintf("%.1f", rate), fmt.Sprintf("ideal %.1f jobs/s (%d / %s)", ideal, c, jobTime), ">= 97% of ideal", rate >= 0.97*ideal),
		info("utilisation", pct(rate/ideal)),
		info("claim to running (duration_ms), steady window", fmt.Sprintf("mean %.0f ms, p95 %.0f ms", mean(durs), quantile(durs, 0.95))),
		info("time per job and slot, steady window", fmt.Sprintf("%.0f ms", 1000*float64(c)/rate)),
		info("GET calls per job", fmt.Sprintf("%.2f", float64(byEP[cnsim.EndpointGet])/float64(n))),
	}
	res.notes = []string{
		fmt.Sprintf("Simulator: create latency %s, get latency %s, provisioning %s; worker concurrency %d, default poll settings; %d requests published before the worker starts.", b.sz.latencyCreate, b.sz.latencyGet, b.sz.latencyProvisioning, c, n),
		fmt.Sprintf("Ideal job time %s = create latency + provisioning + one GET latency: the create answer comes back after %s, the instance runs %s after it was made, and the first GET that can see it running is answered %s after it is sent. (A clairvoyant client that sends that GET %s before the instance runs would need %s; against that the figure is %s.)",
			jobTime, b.sz.latencyCreate, b.sz.latencyProvisioning, b.sz.latencyGet, b.sz.latencyGet, jobTime-b.sz.latencyGet, pct(rate/(float64(c)/(jobTime-b.sz.latencyGet).Seconds()))),
		fmt.Sprintf("Steady window: from the %d-th to the %d-th terminal event, leaving out the first two waves of %d jobs (the first starts with no history of provisioning times and polls with the default backoff; the second learns from those coarse polls) and the last %d (fewer jobs than slots).", i0, i1, c, c),
	}
	return res
}

// scale: bin/provisioner with 10,000 jobs in flight, each instance taking
// 60s; its memory and CPU while they wait.
func (b *bench) scale(ctx context.Context) *result {
	n, prov := b.sz.scaleJobs, b.sz.scaleProvisioning
	res := &result{jobs: n}
	bin := b.provisioner
	if bin == "" {
		b.logf("building cmd/provisioner")
		var err error
		if bin, err = buildProvisioner(ctx, b.tmp); err != nil {
			res.err = err
			return res
		}
	}
	br, err := startBroker()
	if err != nil {
		res.err = err
		return res
	}
	defer br.close()
	sim, err := startSim(cnsim.Config{ProvisionDelay: prov})
	if err != nil {
		res.err = err
		return res
	}
	defer sim.close()
	nc, js, err := br.connect("provbench")
	if err != nil {
		res.err = err
		return res
	}
	defer nc.Close()
	col, err := newCollector(nc, n, false, true)
	if err != nil {
		res.err = err
		return res
	}
	defer col.close()

	p, err := startProcWorker(bin, map[string]string{
		"NATS_URL":                br.url(),
		"CLOUDNEXUS_API_URL":      sim.url(),
		"CLOUDNEXUS_API_KEY":      cnsim.DefaultAPIKey,
		"CLOUDNEXUS_API_H2C":      "true",
		"PROVISIONER_CONCURRENCY": strconv.Itoa(n),
		"PROVISIONER_HTTP_ADDR":   "127.0.0.1:0",
	})
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		if err := p.stop(30 * time.Second); err != nil && res.err == nil && res.done == n {
			res.notes = append(res.notes, "stopping the provisioner: "+err.Error())
		}
	}()
	if err := waitConsumerWaiting(ctx, js, p, 30*time.Second); err != nil {
		res.err = fmt.Errorf("%w\nprovisioner output:\n%s", err, p.output.String())
		return res
	}
	time.Sleep(time.Second)
	idle, err := readMem(p.pid())
	if err != nil {
		res.err = err
		return res
	}
	b.logf("idle: RSS %s", mb(idle.rss))

	reqs := make([]jobs.Request, n)
	for i := range reqs {
		reqs[i] = request("scale", i, "standard-4", benchRegions[i%len(benchRegions)])
	}
	published := time.Now()
	if err := publishAll(ctx, js, reqs); err != nil {
		res.err = err
		return res
	}
	if err := col.waitCreated(ctx, prov/2+time.Minute); err != nil {
		res.err = err
		_, res.done, res.failed = col.counts()
		return res
	}
	allCreated := time.Now()
	b.logf("%d in flight %s after publishing started", n, allCreated.Sub(published).Round(time.Millisecond))

	// The window: from a second after the last create until a second before
	// the first instance can run, so every job is waiting in it.
	sim.rec.mu.Lock()
	firstCreate := slices.MinFunc(sim.rec.creates, time.Time.Compare)
	sim.rec.mu.Unlock()
	winStart, winEnd := allCreated.Add(time.Second), firstCreate.Add(prov-time.Second)
	var cores float64
	var wait memStatus
	var getsPerSec, brokerMsgsPerSec float64
	measured := winEnd.Sub(winStart) >= 500*time.Millisecond
	if measured {
		time.Sleep(time.Until(winStart))
		cpu0, err := readCPU(p.pid())
		if err != nil {
			res.err = err
			return res
		}
		_, by0 := sim.rec.snapshot()
		v0, _ := br.ns.Varz(nil)
		t0 := time.Now()
		time.Sleep(time.Until(winEnd))
		cpu1, err := readCPU(p.pid())
		if err != nil {
			res.err = err
			return res
		}
		dt := time.Since(t0)
		_, by1 := sim.rec.snapshot()
		v1, _ := br.ns.Varz(nil)
		if wait, err = readMem(p.pid()); err != nil {
			res.err = err
			return res
		}
		cores = (cpu1 - cpu0).Seconds() / dt.Seconds()
		getsPerSec = float64(by1[cnsim.EndpointGet]-by0[cnsim.EndpointGet]) / dt.Seconds()
		if v0 != nil && v1 != nil {
			brokerMsgsPerSec = float64(v1.InMsgs-v0.InMsgs) / dt.Seconds()
		}
		b.logf("waiting window %s: CPU %.3f cores, RSS %s, peak %s", dt.Round(time.Millisecond), cores, mb(wait.rss), mb(wait.hwm))
	}

	err = col.waitAll(ctx, prov+2*time.Minute)
	_, res.done, res.failed = col.counts()
	if err != nil {
		res.err = err
		return res
	}
	if !measured {
		res.notes = append(res.notes, "The waiting window was too short to measure (quick run).")
		return res
	}
	growth := float64(wait.rss-idle.rss) / float64(n)
	const limit = 150e6
	res.figures = []figure{
		goal("peak RSS (VmHWM) up to the end of the wait", mb(wait.hwm), "idle RSS "+mb(idle.rss), "<= 150 MB", wait.hwm <= limit),
		goal("CPU while the jobs wait", fmt.Sprintf("%.3f cores", cores), "", "<= 0.25 core", cores <= 0.25),
		info("RSS while the jobs wait", mb(wait.rss)),
		info("memory growth per in-flight job", fmt.Sprintf("%.1f KB", growth/1e3)),
		info("GET calls/s while waiting", fmt.Sprintf("%.0f", getsPerSec)),
		info("messages/s into the broker while waiting", fmt.Sprintf("%.0f", brokerMsgsPerSec)),
		info("time to put every job in flight", secs(allCreated.Sub(published))),
	}
	res.notes = []string{
		fmt.Sprintf("bin/provisioner as a child process, configured only by its environment: PROVISIONER_CONCURRENCY=%d, every other setting its default (ack wait 30s, poll 1s growing to 15s, log level info to a pipe the harness drains). Simulator provisioning time %s.", n, prov),
		"Memory is read from /proc/<pid>/status (VmRSS, VmHWM), CPU from utime+stime in /proc/<pid>/stat. The waiting window runs from 1s after the last created event to 1s before the first instance can be running.",
		"Memory growth per job = (RSS in the window - RSS before any request) / jobs in flight.",
	}
	return res
}

// waitConsumerWaiting waits until the worker process has a pull request
// waiting on its consumer: it is taking jobs.
func waitConsumerWaiting(ctx context.Context, js jetstream.JetStream, p *procWorker, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := p.exited(); done {
			return fmt.Errorf("provisioner exited at start: %v", err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		cons, err := js.Consumer(cctx, "PROVISION_REQUESTS", "provisioner")
		if err == nil {
			info, ierr := cons.Info(cctx)
			if ierr == nil && info.NumWaiting > 0 {
				cancel()
				return nil
			}
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("provisioner not taking jobs after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// polling: provisioning times that depend on plan and region; the worker's
// schedule, run for real (sped up), against AWS's and Terraform's replayed on
// the same times.
func (b *bench) polling(ctx context.Context) *result {
	n, scale := b.sz.pollJobs, b.sz.pollTimeScale
	res := &result{jobs: n}
	plans := []string{"standard-2", "standard-8", "highmem-4"}
	regions := []string{"us-east-1", "eu-west-1"}
	type pair struct{ plan, region string }
	var pairs []pair
	for _, p := range plans {
		for _, r := range regions {
			pairs = append(pairs, pair{p, r})
		}
	}
	// Base times spread evenly so that, with ±10% jitter, every instance
	// takes between 20s and 120s.
	lo, hi := 20.0/0.9, 120.0/1.1
	base := make([]time.Duration, len(pairs))
	for i := range pairs {
		base[i] = time.Duration((lo + (hi-lo)*float64(i)/float64(len(pairs)-1)) * float64(time.Second))
	}
	rng := rand.New(rand.NewPCG(42, 7))
	reqs := make([]jobs.Request, n)
	real := make(map[string]time.Duration, n) // by name: real-time provisioning
	pairOf := make(map[string]int, n)
	for i := range reqs {
		k := rng.IntN(len(pairs))
		reqs[i] = request("poll", i, pairs[k].plan, pairs[k].region)
		real[reqs[i].Name] = time.Duration(float64(base[k]) * (0.9 + 0.2*rng.Float64()))
		pairOf[reqs[i].Name] = k
	}
	sped := func(d time.Duration) time.Duration { return time.Duration(float64(d) / scale) }
	sc := cnsim.Config{ProvisionTime: func(r apiclient.CreateInstanceRequest) time.Duration { return sped(real[r.Name]) }}
	wc := worker.Config{Concurrency: n, PollInitial: sped(time.Second), PollMax: sped(15 * time.Second)}

	run, err := b.startInproc(ctx, n, nil, sc, wc, apiclient.Config{UnencryptedHTTP2: true}, true, nil)
	if err != nil {
		res.err = err
		return res
	}
	defer run.close()
	nc, js, err := run.broker.connect("provbench-publisher")
	if err != nil {
		res.err = err
		return res
	}
	defer nc.Close()
	every := sped(b.sz.pollArrivals) / time.Duration(n)
	b.logf("%d requests, one every %s (time %gx faster than real)", n, every, scale)
	start := time.Now()
	for i, r := range reqs {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		if err := publishOne(ctx, js, r); err != nil {
			res.err = err
			return res
		}
	}
	err = run.col.waitAll(ctx, sped(3*time.Minute)+time.Minute)
	run.fill(res)
	if err != nil {
		res.err = err
		return res
	}

	// Per instance: its GETs, and how long after it ran the completed event
	// was stamped; warm when 5 of its plan and region had completed before it
	// was created.
	terms := run.col.terminalsCopy()
	run.sim.rec.mu.Lock()
	running := maps(run.sim.rec.running)
	gets := maps(run.sim.rec.gets)
	run.sim.rec.mu.Unlock()
	type inst struct {
		pair      int
		real      time.Duration
		created   time.Time
		completed time.Time
		gets      int
		delay     time.Duration // real time
	}
	var all []inst
	for _, r := range reqs {
		t := terms[r.RequestID]
		var ev jobs.Event
		if err := json.Unmarshal(t.body, &ev); err != nil || ev.Kind != jobs.KindCompleted || ev.Instance == nil {
			continue
		}
		ran := running[r.Name]
		d := ev.Time.Sub(ran)
		if d < 0 {
			d = 0 // the event time is truncated to the millisecond
		}
		all = append(all, inst{pair: pairOf[r.Name], real: real[r.Name], created: ran.Add(-sped(real[r.Name])), completed: ev.Time,
			gets: gets[ev.Instance.ID], delay: time.Duration(float64(d) * scale)})
	}
	var warm []inst
	for _, x := range all {
		before := 0
		for _, y := range all {
			if y.pair == x.pair && y.completed.Before(x.created) {
				before++
			}
		}
		if before >= 5 {
			warm = append(warm, x)
		}
	}
	stats := func(xs []inst) (replayStats, []time.Duration) {
		var s replayStats
		var provs []time.Duration
		for _, x := range xs {
			s.add(x.gets, x.delay, x.real)
			provs = append(provs, x.real)
		}
		return s, provs
	}
	wAll, provAll := stats(all)
	wWarm, provWarm := stats(warm)
	aws := awsWaiter(15*time.Second, 120*time.Second)
	awsAll, awsWarm := replay(aws, provAll, 1), replay(aws, provWarm, 1)
	tfAll, tfWarm := replay(terraformStateChange, provAll, 1), replay(terraformStateChange, provWarm, 1)

	row := func(name string, s replayStats) string {
		return fmt.Sprintf("%s: %.2f GETs, delay mean %s (%s of provisioning, p95 %s)", name, s.meanCalls(), secs(s.meanDelay()), pct(s.meanRatio()), pct(s.p95Ratio()))
	}
	b.logf("%d instances, %d warm", len(all), len(warm))
	b.logf("%s", row("worker (warm)", wWarm))
	b.logf("%s", row("aws", awsWarm))
	b.logf("%s", row("terraform", tfWarm))
	fewer := wWarm.meanCalls() < awsWarm.meanCalls() && wWarm.meanCalls() < tfWarm.meanCalls()
	res.figures = []figure{
		goal("GET calls per instance (after warm-up)", fmt.Sprintf("%.2f", wWarm.meanCalls()),
			fmt.Sprintf("AWS waiter %.2f, Terraform %.2f", awsWarm.meanCalls(), tfWarm.meanCalls()), "fewer than both", fewer),
		goal("detection delay / provisioning time, p95 (after warm-up)", pct(wWarm.p95Ratio()),
			fmt.Sprintf("AWS waiter %s, Terraform %s", pct(awsWarm.p95Ratio()), pct(tfWarm.p95Ratio())), "< 10%", wWarm.p95Ratio() < 0.10),
		info("detection delay, mean (after warm-up)", fmt.Sprintf("%s (%s of provisioning)", secs(wWarm.meanDelay()), pct(wWarm.meanRatio()))),
		info("AWS waiter, same instances", fmt.Sprintf("delay %s (%s, p95 %s)", secs(awsWarm.meanDelay()), pct(awsWarm.meanRatio()), pct(awsWarm.p95Ratio()))),
		info("Terraform, same instances", fmt.Sprintf("delay %s (%s, p95 %s)", secs(tfWarm.meanDelay()), pct(tfWarm.meanRatio()), pct(tfWarm.p95Ratio()))),
		info("all instances, warm-up included", fmt.Sprintf("worker %.2f GETs, delay %s (%s, p95 %s); AWS %.2f GETs, %s; Terraform %.2f GETs, %s",
			wAll.meanCalls(), secs(wAll.meanDelay()), pct(wAll.meanRatio()), pct(wAll.p95Ratio()),
			awsAll.meanCalls(), secs(awsAll.meanDelay()), tfAll.meanCalls(), secs(tfAll.meanDelay()))),
		info("instances (after warm-up)", fmt.Sprintf("%d (%d)", len(all), len(warm))),
	}
	bases := make([]string, len(base))
	for i, d := range base {
		bases[i] = fmt.Sprintf("%s/%s %.1fs", pairs[i].plan, pairs[i].region, d.Seconds())
	}
	res.notes = []string{
		fmt.Sprintf("Provisioning times: each plan and region has a base time (%s) and each instance takes its base ±10%% (uniform), so every time lies in [20s, 120s]. %d requests arrive evenly over %s of real time, plan and region drawn at random.", joinComma(bases), n, b.sz.pollArrivals),
		fmt.Sprintf("The worker runs for real with every duration divided by %g: the simulator's provisioning times and the worker's PollInitial and PollMax (1s and 15s, the defaults); its learned schedule is relative to observed times, so GET counts and delay/provisioning ratios carry over, and delays are reported multiplied back to real time. The AWS and Terraform schedules are replayed on the same real-time provisioning times, seeded.", scale),
		"Delay: from the moment the simulator starts answering `running` to the `time` of the completed event. GET calls are counted at the simulator, per instance. After warm-up: instances created after 5 of the same plan and region had completed (the worker needs history to learn from); the first instances of each plan and region poll with the default backoff.",
		"AWS: aws-sdk-go-v2 EC2 InstanceRunning waiter with MinDelay 15s, MaxDelay 120s: DescribeInstances at once, then smithy-go's ComputeDelay (15s, then uniform in [15s, 30s), [15s, 60s), [15s, 120s), ...). Terraform: plugin SDK StateChangeConf with its defaults: refresh at once, then 200ms, 400ms, ... doubling, capped at 10s. Both count their first, immediate call; the worker needs none because the create answer carries the status.",
	}
	return res
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func joinComma(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}

// overload: every create answers 503 with Retry-After for a while; the
// worker should send about one create per Retry-After, then finish every job.
func (b *bench) overload(ctx context.Context) *result {
	n, c := b.sz.stormJobs, b.sz.stormConcurrency
	res := &result{jobs: n}
	reqs := make([]jobs.Request, n)
	for i := range reqs {
		reqs[i] = request("storm", i, "standard-4", benchRegions[i%len(benchRegions)])
	}
	storm := cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 1}, RetryAfter: b.sz.retryAfter}
	sc := cnsim.Config{ProvisionDelay: b.sz.stormProvisioning, Faults: storm}
	run, err := b.startInproc(ctx, n, reqs, sc, worker.Config{Concurrency: c}, apiclient.Config{UnencryptedHTTP2: true}, true, nil)
	if err != nil {
		res.err = err
		return res
	}
	defer run.close()
	stormStart := run.start
	time.Sleep(time.Until(stormStart.Add(b.sz.stormDuration)))
	run.sim.sim.SetFaults(cnsim.Faults{})
	stormEnd := time.Now()
	b.logf("storm over after %s", stormEnd.Sub(stormStart).Round(time.Millisecond))
	err = run.col.waitAll(ctx, 2*time.Minute)
	run.fill(res)
	if err != nil {
		res.err = err
		return res
	}
	total, byEP := run.sim.rec.snapshot()
	run.sim.rec.mu.Lock()
	creates := slices.Clone(run.sim.rec.creates)
	first503 := run.sim.rec.first503
	run.sim.rec.mu.Unlock()
	slices.SortFunc(creates, time.Time.Compare)

	var during []time.Time
	for _, t := range creates {
		if !t.Before(stormStart) && t.Before(stormEnd) {
			during = append(during, t)
		}
	}
	if len(during) == 0 || first503.IsZero() {
		res.err = fmt.Errorf("no create was answered 503 during the storm")
		return res
	}
	// The first period holds the creates already sent when the first 503
	// came back; after it, count the most creates in any Retry-After window.
	ra := b.sz.retryAfter
	firstPeriodEnd := during[0].Add(ra)
	burst, later := 0, during[:0:0]
	for _, t := range during {
		if t.Before(firstPeriodEnd) {
			burst++
		} else {
			later = append(later, t)
		}
	}
	maxInWindow := 0
	for i := range later {
		j := i
		for j < len(later) && later[j].Sub(later[i]) < ra {
			j++
		}
		maxInWindow = max(maxInWindow, j-i)
	}
	laterSpan := stormEnd.Sub(firstPeriodEnd)
	perPeriod := float64(len(later)) / (laterSpan.Seconds() / ra.Seconds())
	b.logf("storm: %d creates in the first %s, then %d in %s (max %d per %s)", burst, ra, len(later), laterSpan.Round(time.Millisecond), maxInWindow, ra)
	res.figures = []figure{
		goal("most creates in any Retry-After window, after the first", strconv.Itoa(maxInWindow), fmt.Sprintf("Retry-After %s", ra), "<= 1 per window", maxInWindow <= 1),
		info("creates during the storm", fmt.Sprintf("%.2f/s overall (%d in %s); %.2f per Retry-After after the first period", float64(len(during))/stormEnd.Sub(stormStart).Seconds(), len(during), stormEnd.Sub(stormStart).Round(time.Second), perPeriod)),
		info("creates in the first Retry-After period", fmt.Sprintf("%d (sent before the first 503 came back)", burst)),
		goal("jobs completed after the storm", fmt.Sprintf("%d of %d", res.done-res.failed, n), "", "all", res.done-res.failed == n),
		info("API calls per job, whole run", fmt.Sprintf("%.2f (create %.2f, list %.2f, get %.2f)", float64(total)/float64(n),
			float64(byEP[cnsim.EndpointCreate])/float64(n), float64(byEP[cnsim.EndpointList])/float64(n), float64(byEP[cnsim.EndpointGet])/float64(n))),
	}
	res.notes = []string{
		fmt.Sprintf("Simulator: every create answered 503 with Retry-After %s for the first %s after the worker starts (cnsim Faults ErrorRate create=1), then no faults; provisioning %s. %d requests published before the worker starts, worker concurrency %d, default retry settings.", ra, b.sz.stormDuration, b.sz.stormProvisioning, n, c),
		"Create calls are counted at the simulator by arrival time. After a create whose outcome is unknown (a 503), the contract has the worker look for the instance by name before creating again, hence the list calls.",
	}
	return res
}

// startCPUProfile starts writing a CPU profile of the process to path, and
// returns what stops it; with an empty path, or when the profile cannot be
// started, it does nothing and returns nil.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

package faults

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// testSIGKILL kills the only worker process with SIGKILL at random moments
// while 120 jobs are at every step of their life, and restarts it each time.
// The jobs it had in flight must be resumed from their records after the
// ack wait, with no second instance and no second terminal event.
//
// The simulator ignores Idempotency-Key and spends up to 400ms inside each
// create before making the instance, whether or not the caller is still
// there; the first kill of each run lands while creates are in progress. A
// job killed there has an instance its record does not know of: only the
// lookup by name before creating again keeps it from getting a second one.
func testSIGKILL(t *testing.T, s *suite, seed uint64) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5197c11))
	provision := spreadProvisionTime(seed, 100*time.Millisecond, 1500*time.Millisecond)
	inCreate := spreadProvisionTime(seed+1, 0, 400*time.Millisecond)
	e := newEnv(t, s, options{sim: cnsim.Config{Seed: seed, IgnoreIdempotencyKey: true,
		ProvisionTime: func(req apiclient.CreateInstanceRequest) time.Duration {
			time.Sleep(inCreate(req)) // the create is being served
			return provision(req)
		}}})
	const rounds, perRound = 4, 30
	w := e.startReplica("w")
	phases := make(map[string]int)
	creating := make(map[string]bool)
	prefix := fmt.Sprintf("kill%d", seed)
	var points []string
	for round := range rounds {
		calls := e.sim.Calls(cnsim.EndpointCreate)
		e.submit(requests(prefix, round*perRound+1, perRound)...)
		if round == 0 {
			// While creates are in progress: after the k-th create call.
			k := 1 + rng.IntN(perRound/2)
			deadline := time.Now().Add(time.Minute)
			for e.sim.Calls(cnsim.EndpointCreate) < calls+k && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			wait := time.Duration(rng.Int64N(int64(100 * time.Millisecond)))
			time.Sleep(wait)
			points = append(points, fmt.Sprintf("%s after create call %d", wait.Round(time.Millisecond), k))
		} else {
			wait := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
			time.Sleep(wait)
			points = append(points, wait.Round(time.Millisecond).String()+" after publishing")
		}
		w.kill()
		cut := e.cutOff(w.p.id)
		addPhases(phases, cut)
		for id, phase := range cut {
			if phase == "creating" {
				creating[id] = true
			}
		}
		w.start()
	}
	e.verify(caseReport{
		name:     fmt.Sprintf("SIGKILL at random points, restarted (seed %d)", seed),
		injected: fmt.Sprintf("%d rounds of %d new requests, each followed by SIGKILL of the only worker process (%s) and a restart; the API ignores Idempotency-Key and spends up to 400ms in each create", rounds, perRound, strings.Join(points, "; ")),
		check: func([]storedEvent) (notes, problems []string) {
			adopted := 0
			for id := range w.requestIDsLogged("adopted the instance an earlier create made") {
				if creating[id] {
					adopted++
				}
			}
			if adopted == 0 {
				problems = append(problems, "no kill left an instance its record did not know of: the create window was not exercised")
			}
			notes = append(notes, fmt.Sprintf("jobs cut off by the kills: %s; %d instances made after their worker died were found by name and adopted", phaseNote(phases), adopted))
			return notes, problems
		},
	})
}

// testThreeReplicasOneKilled runs three worker processes on the one
// consumer and kills one of them mid-run, for good. The other two must take
// over its jobs.
func testThreeReplicasOneKilled(t *testing.T, s *suite) {
	rng := rand.New(rand.NewPCG(s.seed, 0x3e9))
	e := newEnv(t, s, options{sim: cnsim.Config{Seed: s.seed, ProvisionTime: spreadProvisionTime(s.seed, 300*time.Millisecond, 1500*time.Millisecond)}})
	reps := []*replica{e.startReplica("w1"), e.startReplica("w2"), e.startReplica("w3")}
	e.submit(requests("three", 1, 150)...)
	time.Sleep(300*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second))))
	victim := reps[rng.IntN(len(reps))]
	victim.kill()
	cut := e.cutOff(victim.p.id)
	phases := make(map[string]int)
	addPhases(phases, cut)

	e.verify(caseReport{
		name:     "three replicas on one consumer, one killed",
		injected: fmt.Sprintf("150 requests over three worker processes; SIGKILL of %s mid-run, not restarted", victim.name),
		check: func([]storedEvent) (notes, problems []string) {
			var counts []string
			finishedBy := make(map[string]string)
			for _, r := range reps {
				ids := r.requestIDsLogged("request finished")
				counts = append(counts, fmt.Sprintf("%s %d", r.name, len(ids)))
				for id := range ids {
					finishedBy[id] = r.name
				}
			}
			for id := range cut {
				if by := finishedBy[id]; by == "" || by == victim.name {
					problems = append(problems, fmt.Sprintf("%s, cut off in %s, was not finished by another replica", id, victim.name))
				}
			}
			notes = append(notes, fmt.Sprintf("jobs cut off in %s: %s, all finished by the other two; requests finished: %s", victim.name, phaseNote(phases), strings.Join(counts, ", ")))
			return notes, problems
		},
	})
}

// testSIGTERM stops a worker with SIGTERM while it has jobs in flight, half
// of which cannot finish within its grace. It must exit 0 soon after the
// grace, handing the rest back; a second replica must finish them without
// creating them again.
func testSIGTERM(t *testing.T, s *suite) {
	const grace = 2 * time.Second
	slow := func(name string) bool { return strings.ContainsAny(name[len(name)-1:], "13579") } // odd numbers
	e := newEnv(t, s, options{sim: cnsim.Config{ProvisionTime: func(req apiclient.CreateInstanceRequest) time.Duration {
		if slow(req.Name) {
			return 20 * time.Second // far past the grace
		}
		return time.Second
	}}})
	a := e.startReplica("a", "PROVISIONER_SHUTDOWN_TIMEOUT="+grace.String())
	reqs := requests("term", 1, 20)
	e.submit(reqs...)
	e.waitCounted("provision.events.created.>", len(reqs), time.Minute)
	b := e.startReplica("b")

	code, took := a.term(time.Minute)
	if code != 0 {
		t.Errorf("a exited %d after SIGTERM, want 0", code)
	}
	// Not a performance bound: a worker that waited for its jobs instead of
	// handing them back after the grace would take the 20s they need.
	if took > grace+8*time.Second {
		t.Errorf("a took %s to exit after SIGTERM with a grace of %s", took, grace)
	}

	e.verify(caseReport{
		name:     "SIGTERM with jobs in flight",
		injected: fmt.Sprintf("SIGTERM to the replica working all 20 requests (10 need 20s to provision, 10 need 1s), grace %s; a second replica running", grace),
		check: func([]storedEvent) (notes, problems []string) {
			byA, byB := a.requestIDsLogged("request finished"), b.requestIDsLogged("request finished")
			var slowIDs []string
			for _, r := range reqs {
				if slow(r.Name) {
					slowIDs = append(slowIDs, r.RequestID)
					if !byB[r.RequestID] || byA[r.RequestID] {
						problems = append(problems, fmt.Sprintf("%s (20s to provision) was not finished by the second replica", r.RequestID))
					}
				}
			}
			if a.countLog("shutdown grace over: handing the remaining jobs back") != 1 {
				problems = append(problems, "a did not hand its remaining jobs back when the grace ran out")
			}
			slices.Sort(slowIDs)
			notes = append(notes, fmt.Sprintf("exit code %d, %s after SIGTERM; finished by the stopping replica %d, by the other %d (all %d slow ones)", code, took.Round(100*time.Millisecond), len(byA), len(byB), len(slowIDs)))
			return notes, problems
		},
	})
}

// testFrozenReplica freezes a worker process (SIGSTOP) for longer than its
// leases while its jobs wait to create behind a 503 storm, lets a second
// replica take the jobs over and create their instances, then thaws the
// first (SIGCONT). The thawed replica has lost its leases: it must not act
// on those jobs again, in particular not create a second instance.
func testFrozenReplica(t *testing.T, s *suite) {
	e := newEnv(t, s, options{sim: cnsim.Config{ProvisionDelay: 300 * time.Millisecond, IgnoreIdempotencyKey: true, Faults: cnsim.Faults{
		ErrorRate:   map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 1},
		ErrorStatus: 503,
		RetryAfter:  3 * time.Second,
	}}})
	a := e.startReplica("a")
	// The first jobs close a's gate; the next ones wait behind it for their
	// first create.
	e.submit(requests("frozen", 1, 5)...)
	deadline := time.Now().Add(time.Minute)
	for e.sim.Calls(cnsim.EndpointCreate) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	waiting := requests("frozen", 6, 10)
	e.submit(waiting...)
	// Once a's lease keeper has renewed a job, the job is past its claim and
	// waits at the gate for its first create.
	first := make(map[string]uint64)
	for renewed := 0; renewed < len(waiting) && time.Now().Before(deadline); {
		renewed = 0
		for _, r := range waiting {
			rev, owner := e.revision(r.RequestID)
			switch {
			case !strings.HasPrefix(owner, a.p.id+"/"):
			case first[r.RequestID] == 0:
				first[r.RequestID] = rev
			case rev > first[r.RequestID]:
				renewed++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	b := e.startReplica("b")
	// b takes every job over once a's leases have expired, and creates the
	// instances once the storm is over.
	for time.Now().Before(deadline) {
		recs := e.records()
		n := 0
		for _, rec := range recs {
			if strings.HasPrefix(rec.Owner, b.p.id+"/") {
				n++
			}
		}
		if n == len(recs) && n == 15 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.sim.SetFaults(cnsim.Faults{})
	e.waitCounted("provision.events.created.>", 15, time.Minute)
	if err := a.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	e.verify(caseReport{
		name:     "replica frozen past its leases, then thawed",
		injected: "SIGSTOP of the replica whose 15 jobs wait behind a 503 storm (Retry-After: 3) to create; a second replica takes them over and creates them after the storm; then SIGCONT; the API ignores Idempotency-Key",
		check: func([]storedEvent) (notes, problems []string) {
			lost := a.requestIDsLogged("lease lost: another delivery continues the job")
			for _, r := range waiting {
				if !lost[r.RequestID] {
					problems = append(problems, fmt.Sprintf("%s: the thawed replica did not notice it had lost the lease", r.RequestID))
				}
			}
			notes = append(notes, fmt.Sprintf("the thawed replica stopped %d jobs on finding its lease lost and finished %d; the other finished %d", len(lost), len(a.requestIDsLogged("request finished")), len(b.requestIDsLogged("request finished"))))
			return notes, problems
		},
	})
}

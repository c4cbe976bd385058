package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
)

// testAmbiguousCreate makes half the creates succeed in the simulator but
// answer 500, or close the connection without an answer, while the
// simulator ignores Idempotency-Key: only looking the instance up by name
// before creating again avoids a second instance. With h2c the worker speaks
// HTTP/2 to the simulator, where a dropped answer is a reset stream on a
// connection shared by every call.
func testAmbiguousCreate(t *testing.T, s *suite, drop, h2c bool) {
	f, what, prefix := cnsim.Faults{CreateThen500: 0.5}, "500 INTERNAL_ERROR", "amb500"
	if drop {
		f, what, prefix = cnsim.Faults{CreateThenDrop: 0.5}, "the connection closed without an answer", "ambdrop"
	}
	e := newEnv(t, s, options{sim: cnsim.Config{Seed: s.seed, ProvisionDelay: 300 * time.Millisecond, IgnoreIdempotencyKey: true, Faults: f}})
	// Few connections, each reused for many creates: net/http replays a
	// request on a reused connection that closes before answering when it
	// thinks the request idempotent, behind the worker's back.
	name := "create answered " + map[bool]string{false: "500", true: "by a dropped connection"}[drop] + " after the instance was made"
	replicaEnv := []string{"PROVISIONER_CONCURRENCY=4"}
	if h2c {
		prefix += "h2"
		name = "create answered by a reset HTTP/2 stream after the instance was made"
		what = "the stream is reset without an answer (HTTP/2 without TLS, one shared connection)"
		replicaEnv = append(replicaEnv, "CLOUDNEXUS_API_H2C=true")
	}
	e.startReplica("w", replicaEnv...)
	e.submit(requests(prefix, 1, 40)...)
	e.verify(caseReport{
		name:     name,
		injected: fmt.Sprintf("half the creates make the instance, then %s; the simulator ignores Idempotency-Key", what),
		check: func([]storedEvent) (notes, problems []string) {
			adopted := e.countLogAll("adopted the instance an earlier create made")
			if adopted == 0 {
				problems = append(problems, "no instance was adopted: the fault was not exercised")
			}
			if h2 := e.sim.HTTP2Calls(); h2c && h2 == 0 {
				problems = append(problems, "no call came over HTTP/2: h2c was not exercised")
			} else if !h2c && h2 != 0 {
				problems = append(problems, fmt.Sprintf("%d calls came over HTTP/2, want HTTP/1.1", h2))
			}
			notes = append(notes, fmt.Sprintf("%d create calls; %d instances found by name and adopted instead of created again", e.sim.Calls(cnsim.EndpointCreate), adopted))
			return notes, problems
		},
	})
}

// testStorm answers half the creates and half the polls with status and a
// Retry-After of 1s.
func testStorm(t *testing.T, s *suite, status int) {
	e := newEnv(t, s, options{sim: cnsim.Config{Seed: s.seed, ProvisionDelay: 300 * time.Millisecond, Faults: cnsim.Faults{
		ErrorRate:   map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 0.5, cnsim.EndpointGet: 0.5},
		ErrorStatus: status,
		RetryAfter:  time.Second,
	}}})
	e.startReplica("w")
	e.submit(requests(fmt.Sprintf("storm%d", status), 1, 40)...)
	e.verify(caseReport{
		name:     fmt.Sprintf("%d storm on create and get", status),
		injected: fmt.Sprintf("50%% of creates and of polls answered %d with Retry-After: 1", status),
		check: func([]storedEvent) ([]string, []string) {
			return []string{fmt.Sprintf("%d create calls and %d get calls for 40 instances", e.sim.Calls(cnsim.EndpointCreate), e.sim.Calls(cnsim.EndpointGet))}, nil
		},
	})
}

// testOverload answers every create 503 with Retry-After: 1 for a while.
// The replica must slow all its creates, not only each job's own retries:
// about one create call per Retry-After, not one per job.
func testOverload(t *testing.T, s *suite) {
	const jobsInFlight = 30
	e := newEnv(t, s, options{sim: cnsim.Config{ProvisionDelay: 300 * time.Millisecond, Faults: cnsim.Faults{
		ErrorRate:   map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 1},
		ErrorStatus: 503,
		RetryAfter:  time.Second,
	}}})
	e.startReplica("w")
	e.submit(requests("overload", 1, jobsInFlight)...)
	// Let every job make its first create, so that the gate is closed.
	deadline := time.Now().Add(time.Minute)
	for e.sim.Calls(cnsim.EndpointCreate) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	before, start := e.sim.Calls(cnsim.EndpointCreate), time.Now()
	time.Sleep(5 * time.Second)
	during, window := e.sim.Calls(cnsim.EndpointCreate)-before, time.Since(start)
	e.sim.SetFaults(cnsim.Faults{})

	// A bound on calls, not on time: one probe per Retry-After in the
	// window, plus slack. Without the shared gate each of the 30 jobs would
	// call once per Retry-After, some 150 calls.
	bound := int(window/time.Second) + 3
	e.verify(caseReport{
		name:     "overload: 503 storm with Retry-After on every create",
		injected: fmt.Sprintf("every create answered 503 with Retry-After: 1 while %d jobs wait to create, then the storm ends", jobsInFlight),
		check: func([]storedEvent) (notes, problems []string) {
			if during > bound {
				problems = append(problems, fmt.Sprintf("%d create calls in %s of storm, want at most %d", during, window.Round(100*time.Millisecond), bound))
			}
			notes = append(notes, fmt.Sprintf("%d create calls in %s of storm with %d jobs waiting (bound %d)", during, window.Round(100*time.Millisecond), jobsInFlight, bound))
			return notes, problems
		},
	})
}

// testRetriesExhausted answers every create 503 with a short retry budget
// and PROVISIONER_MAX_DELIVER=3: each job must end failed with
// RETRIES_EXHAUSTED on its third attempt, not be dropped.
func testRetriesExhausted(t *testing.T, s *suite) {
	e := newEnv(t, s, options{sim: cnsim.Config{Faults: cnsim.Faults{
		ErrorRate:   map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 1},
		ErrorStatus: 503,
	}}})
	e.startReplica("w", "PROVISIONER_MAX_DELIVER=3", "PROVISIONER_RETRY_MAX_ELAPSED=300ms")
	for _, r := range requests("exhaust", 1, 5) {
		e.expect(want{req: r, kind: jobs.KindFailed, code: jobs.CodeRetriesExhausted, instances: 0})
		e.publish(mustJSON(t, r), r.RequestID)
	}
	e.verify(caseReport{
		name:     "retries exhausted on the last attempt",
		injected: "every create answered 503; PROVISIONER_MAX_DELIVER=3, PROVISIONER_RETRY_MAX_ELAPSED=300ms",
		check: func(events []storedEvent) (notes, problems []string) {
			for _, se := range events {
				if se.ev.Kind == jobs.KindFailed && (se.ev.Error == nil || !strings.Contains(se.ev.Error.Message, "after 3 attempts")) {
					problems = append(problems, fmt.Sprintf("%s: failed event does not say it gave up after 3 attempts: %s", se.ev.RequestID, se.data))
				}
			}
			notes = append(notes, "every request failed with RETRIES_EXHAUSTED after its 3rd attempt")
			return notes, problems
		},
	})
}

// testWrongKey starts the worker with a key the API rejects, then fixes the
// key in the API. No request may fail; the worker must report not-ready
// while paused and finish everything once the key works.
func testWrongKey(t *testing.T, s *suite) {
	e := newEnv(t, s, options{sim: cnsim.Config{ProvisionDelay: 200 * time.Millisecond}})
	e.sim.SetAPIKey("cn_live_another_account_key")
	w := e.startReplica("w")
	addr, err := w.p.probeAddr()
	if err != nil {
		t.Fatal(err)
	}
	reqs := requests("key", 1, 20)
	e.submit(reqs...)
	paused := waitStatus(addr, 503, time.Minute)
	if !paused {
		t.Errorf("/readyz never answered 503 while the key was rejected")
	}
	left, err := e.outstanding()
	if err != nil {
		t.Fatal(err)
	}
	if left != len(reqs) {
		t.Errorf("%d requests finished while the key was rejected, want none", len(reqs)-left)
	}
	e.sim.SetAPIKey(secret)
	resumed := waitStatus(addr, 200, time.Minute)
	if !resumed {
		t.Errorf("/readyz did not answer 200 again once the key worked")
	}
	e.verify(caseReport{
		name:     "wrong API key, then the right one",
		injected: "the API rejects the worker's key (401) while 20 requests arrive; then it accepts it",
		check: func([]storedEvent) ([]string, []string) {
			return []string{fmt.Sprintf("/readyz 503 while paused: %v, 200 after: %v; no request failed; %d probes of GET /v1/me", paused, resumed, e.sim.Calls(cnsim.EndpointMe))}, nil
		},
	})
}

// waitStatus waits until a worker's /readyz answers status.
func waitStatus(addr string, status int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if readyz(addr) == status {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
)

// testDuplicates publishes every request again: within the duplicate window
// with the same Nats-Msg-Id (JetStream drops it) and without one (the job
// record answers it), after the window (modelled with a new Nats-Msg-Id,
// which JetStream accepts), and with a conflicting body under the same
// request_id both while the original is in flight and after it finished.
func testDuplicates(t *testing.T, s *suite) {
	e := newEnv(t, s, options{sim: cnsim.Config{ProvisionDelay: 2 * time.Second}})
	e.startReplica("w")

	dups := requests("dup", 1, 10)
	dropped := 0
	for _, r := range dups {
		e.submit(r)
		b := mustJSON(t, r)
		if ack := e.publish(b, r.RequestID); ack.Duplicate {
			dropped++
		}
		e.publish(b, "")
	}
	conflicts := requests("conflict", 1, 5)
	conflicting := func(r jobs.Request) []byte {
		r.Plan, r.Metadata = "highmem-8", map[string]string{"suite": "faults", "body": "another"}
		return mustJSON(t, r)
	}
	// In flight: once the original has been claimed and created. (Published
	// at the same moment, either body may be claimed first, and the other is
	// the conflict.)
	e.submit(conflicts...)
	for _, r := range conflicts {
		e.waitCounted(jobs.Subjects{}.Event(jobs.KindCreated, r.RequestID), 1, time.Minute)
		e.publish(conflicting(r), r.RequestID+"-conflict-in-flight")
		e.expectRejected(r.RequestID, jobs.CodeIdempotencyConflict, 1)
	}
	if n := e.waitFinished(2 * time.Minute); n > 0 {
		t.Fatalf("%d requests did not finish", n)
	}
	for _, r := range dups {
		if ack := e.publish(mustJSON(t, r), r.RequestID+"-after-window"); ack.Duplicate {
			t.Errorf("%s: a new Nats-Msg-Id was taken for a duplicate", r.RequestID)
		}
	}
	for _, r := range conflicts {
		e.publish(conflicting(r), r.RequestID+"-conflict-after")
		e.expectRejected(r.RequestID, jobs.CodeIdempotencyConflict, 1)
	}

	e.verify(caseReport{
		name:     "duplicate and conflicting requests",
		injected: "10 requests each published 4 times: twice with one Nats-Msg-Id, once without, once after they finished with a new one (as after the 2m window); 5 requests each followed by a conflicting body under the same request_id, in flight and after",
		check: func([]storedEvent) (notes, problems []string) {
			if dropped != len(dups) {
				problems = append(problems, fmt.Sprintf("JetStream dropped %d of %d re-publishes with the same Nats-Msg-Id", dropped, len(dups)))
			}
			answered := 0
			for _, r := range dups {
				// The original, the copy without Nats-Msg-Id and the late copy
				// each get the terminal event, byte for byte (checked by verify).
				if n := len(e.seenTerminal(r.RequestID)); n < 3 {
					problems = append(problems, fmt.Sprintf("%s: terminal event published %d times, want one per accepted copy (3)", r.RequestID, n))
				}
				answered += len(e.seenTerminal(r.RequestID))
			}
			recs := e.records()
			for _, r := range conflicts {
				if rec := recs[r.RequestID]; rec.Fingerprint != r.Fingerprint() {
					problems = append(problems, fmt.Sprintf("%s: job record changed by the conflicting body", r.RequestID))
				}
				for _, inst := range e.sim.Instances() {
					if inst.Name == r.Name && inst.Plan != r.Plan {
						problems = append(problems, fmt.Sprintf("%s: instance has plan %s, not the original %s", r.RequestID, inst.Plan, r.Plan))
					}
				}
			}
			notes = append(notes, fmt.Sprintf("%d same-id copies dropped by JetStream; %d terminal publishes for the 10 duplicated requests, all identical, one stored each; 10 conflicts rejected with IDEMPOTENCY_CONFLICT, originals untouched", dropped, answered))
			return notes, problems
		},
	})
}

// testPoison publishes messages that can never be provisioned between good
// ones: each must get the event docs/CONTRACT.md gives it, and the worker
// must keep working.
func testPoison(t *testing.T, s *suite) {
	e := newEnv(t, s, options{sim: cnsim.Config{ProvisionDelay: 200 * time.Millisecond}})
	e.startReplica("w")

	valid := func(id string, extra map[string]any) []byte {
		m := map[string]any{"request_id": id, "name": "vm-" + id, "plan": "standard-4", "region": "eu-west-1", "image": "ubuntu-22.04"}
		for k, v := range extra {
			m[k] = v
		}
		return mustJSON(t, m)
	}
	pad := strings.Repeat("x", jobs.MaxRequestSize+1024)
	manyKeys := make([]string, 2000)
	for i := range manyKeys {
		manyKeys[i] = fmt.Sprintf("ssh_key_%04d", i)
	}
	tests := []struct {
		name   string
		body   []byte
		reject bool     // rejected on the unknown subject
		id     string   // request_id of a failed or completed request
		code   string   // failed code; empty for completed
		fields []string // fields the INVALID_REQUEST details must name
	}{
		{name: "invalid JSON", body: []byte(`{"request_id":"poison-json","name":`), reject: true},
		{name: "not an object", body: []byte(`["poison-array"]`), reject: true},
		{name: "empty", body: []byte{}, reject: true},
		{name: "binary", body: []byte{0x00, 0xff, 0xfe, 0x7b}, reject: true},
		{name: "trailing data", body: append(valid("poison-trailing", nil), []byte(`{}`)...), reject: true},
		{name: "bad request_id", body: valid("../../etc/passwd", nil), reject: true},
		{name: "oversized without request_id", body: mustJSON(t, map[string]string{"padding": pad}), reject: true},
		{name: "oversized with request_id", body: valid("poison-big", map[string]any{"padding": pad}), id: "poison-big", code: jobs.CodeInvalidRequest, fields: []string{""}},
		{name: "wrong types", body: mustJSON(t, map[string]any{"request_id": "poison-types", "name": 5, "plan": true, "region": []string{"eu-west-1"}, "image": map[string]int{"id": 1}, "ssh_keys": "ssh_key_a", "metadata": []int{1}}),
			id: "poison-types", code: jobs.CodeInvalidRequest, fields: []string{"metadata", "name", "plan", "region", "image", "ssh_keys"}},
		{name: "missing fields", body: []byte(`{"request_id":"poison-missing"}`), id: "poison-missing", code: jobs.CodeInvalidRequest, fields: []string{"name", "plan", "region", "image"}},
		{name: "huge ssh_keys list", body: valid("poison-keys", map[string]any{"ssh_keys": manyKeys}), id: "poison-keys", code: jobs.CodeInvalidRequest, fields: []string{"ssh_keys"}},
		{name: "unknown fields", body: valid("poison-unknown", map[string]any{"colour": "blue", "nested": map[string]any{"deep": []int{1, 2, 3}}, "Request_ID": "other"}), id: "poison-unknown"},
		{name: "refused by the API", body: mustJSON(t, map[string]string{"request_id": "poison-region", "name": "vm-poison-region", "plan": "standard-4", "region": "mars-1", "image": "ubuntu-22.04"}), id: "poison-region", code: "VALIDATION_ERROR"},
	}
	good := requests("good", 1, len(tests)+5)
	for i, tt := range tests {
		e.submit(good[i])
		switch {
		case tt.reject:
			e.expectRejected(jobs.UnknownRequestID, jobs.CodeMalformedMessage, 1)
		case tt.code == "":
			e.expect(want{req: jobs.Request{RequestID: tt.id, Name: "vm-" + tt.id}, kind: jobs.KindCompleted, instances: 1})
		case tt.code == "VALIDATION_ERROR":
			e.expect(want{req: jobs.Request{RequestID: tt.id, Name: "vm-" + tt.id}, kind: jobs.KindFailed, code: tt.code, instances: 0})
		default:
			e.expect(want{req: jobs.Request{RequestID: tt.id}, kind: jobs.KindFailed, code: tt.code, instances: 0})
		}
		e.publish(tt.body, "")
	}
	// The worker is still working after all of them.
	e.submit(good[len(tests):]...)

	e.verify(caseReport{
		name:     "poison input",
		injected: "invalid JSON, not an object, empty, binary, trailing data, bad request_id, over 64 KiB with and without request_id, wrong types, missing fields, 2000 ssh_keys, unknown fields, a region the API refuses; between 18 good requests",
		check: func(events []storedEvent) (notes, problems []string) {
			byID := make(map[string]storedEvent)
			for _, se := range events {
				if se.ev.Kind == jobs.KindFailed {
					byID[se.ev.RequestID] = se
				}
			}
			for _, tt := range tests {
				if tt.fields == nil {
					continue
				}
				se, ok := byID[tt.id]
				if !ok || se.ev.Error == nil {
					continue // verify reports it
				}
				var details []jobs.FieldError
				if err := json.Unmarshal(se.ev.Error.Details, &details); err != nil {
					problems = append(problems, fmt.Sprintf("%s: details are not field errors: %s", tt.name, se.ev.Error.Details))
					continue
				}
				var got []string
				for _, d := range details {
					got = append(got, strings.SplitN(d.Field, "[", 2)[0])
				}
				for _, f := range tt.fields {
					if !slices.Contains(got, f) {
						problems = append(problems, fmt.Sprintf("%s: INVALID_REQUEST details %v do not name %q", tt.name, got, f))
					}
				}
			}
			if n := e.sim.Calls(cnsim.EndpointCreate); n != len(good)+2 {
				problems = append(problems, fmt.Sprintf("%d create calls, want %d: one per good request, the unknown-fields one and the one the API refused", n, len(good)+2))
			}
			notes = append(notes, "7 messages rejected with MALFORMED_MESSAGE, 4 failed with INVALID_REQUEST (no API call), 1 failed with the API's VALIDATION_ERROR, unknown fields ignored; every good request completed")
			return notes, problems
		},
	})
}

// mustJSON encodes v or fails the test.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

package worker_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/schema"
	"github.com/cloudnexus/provisioner/worker"
)

// TestEndToEnd publishes 200 requests and checks every promise of the
// contract on them.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(wc *worker.Config, sc *cnsim.Config, _ *apiclient.Config) {
		wc.Concurrency = 64
	})
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("e2e-%03d", i)
		e.publishRequest(request(ids[i]))
	}
	by := e.waitTerminal(60*time.Second, ids...)
	e.waitDrained(10 * time.Second)
	validateEvents(t, e.events())

	for _, id := range ids {
		evs := by[id]
		if got := kinds(evs); !reflect.DeepEqual(got, []jobs.Kind{jobs.KindCreated, jobs.KindCompleted}) {
			t.Errorf("%s: events %v, want [created completed]", id, got)
			continue
		}
		created, completed := evs[0].ev, evs[1].ev
		if n := e.sim.CreatesByName("vm-" + id); n != 1 {
			t.Errorf("%s: simulator created %d instances, want 1", id, n)
		}
		inst, ok := e.sim.Instance(completed.Instance.ID)
		if !ok {
			t.Errorf("%s: completed names instance %s, unknown to the simulator", id, completed.Instance.ID)
			continue
		}
		if created.Instance.ID != inst.ID || completed.Instance.IPv4 != inst.IPv4 || inst.IPv4 == "" {
			t.Errorf("%s: created %s, completed %s %q; simulator %s %q", id, created.Instance.ID, completed.Instance.ID, completed.Instance.IPv4, inst.ID, inst.IPv4)
		}
		if completed.Instance.Status != apiclient.StatusRunning || completed.APICalls < 2 || completed.DurationMS <= 0 {
			t.Errorf("%s: completed %+v", id, completed)
		}
		if completed.Metadata["team"] != "payments" || created.Metadata["team"] != "payments" {
			t.Errorf("%s: metadata not echoed: %v / %v", id, created.Metadata, completed.Metadata)
		}
		if want := "provision.events.completed." + id; evs[1].subject != want {
			t.Errorf("%s: subject %s, want %s", id, evs[1].subject, want)
		}
		if got := evs[1].header.Get("Nats-Msg-Id"); got != id+".completed" {
			t.Errorf("%s: Nats-Msg-Id %q", id, got)
		}
		if got := evs[1].header.Get("ce-type"); got != "io.cloudnexus.provisioner.instance.completed" {
			t.Errorf("%s: ce-type %q", id, got)
		}
	}
	if got := e.sim.Creates(); got != n {
		t.Errorf("simulator created %d instances, want %d", got, n)
	}
}

// TestExpectedEvents checks the exact event each kind of failure gets.
func TestExpectedEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opt    envOption
		body   string
		want   jobs.Event
		noAPI  bool // no API call at all
		delete bool // the instance was deleted
	}{
		{
			name: "validation error from the API",
			body: `{"request_id":"bad-region","name":"vm-1","plan":"standard-4","region":"mars-1","image":"ubuntu-22.04","metadata":{"team":"payments"}}`,
			want: jobs.Event{RequestID: "bad-region", Kind: jobs.KindFailed, Metadata: map[string]string{"team": "payments"},
				Error: &jobs.EventError{Code: "VALIDATION_ERROR", Message: "Invalid region specified", HTTPStatus: 400,
					Details: json.RawMessage(`[{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]`)}},
		},
		{
			name:  "invalid fields",
			body:  `{"request_id":"bad-fields","name":"","plan":8,"region":"eu-west-1","image":"ubuntu-22.04"}`,
			noAPI: true,
			want: jobs.Event{RequestID: "bad-fields", Kind: jobs.KindFailed, Metadata: map[string]string{},
				Error: &jobs.EventError{Code: "INVALID_REQUEST", Message: "invalid request: name: must not be empty; plan: must be a string",
					Details: json.RawMessage(`[{"field":"name","reason":"must not be empty"},{"field":"plan","reason":"must be a string"}]`)}},
		},
		{
			name: "malformed JSON",
			body: `{"request_id":"x",`, noAPI: true,
			want: jobs.Event{Kind: jobs.KindRejected, Metadata: map[string]string{}, StreamSequence: 1,
				Error: &jobs.EventError{Code: "MALFORMED_MESSAGE", Message: "reject message: message is not a JSON object"}},
		},
		{
			name: "missing request_id",
			body: `{"name":"vm-1","plan":"standard-4","region":"eu-west-1","image":"ubuntu-22.04"}`, noAPI: true,
			want: jobs.Event{Kind: jobs.KindRejected, Metadata: map[string]string{}, StreamSequence: 1,
				Error: &jobs.EventError{Code: "MALFORMED_MESSAGE", Message: "reject message: request_id is missing"}},
		},
		{
			name: "instance ends in error",
			opt: func(_ *worker.Config, sc *cnsim.Config, _ *apiclient.Config) {
				sc.Faults.EndInError = 1
			},
			body: `{"request_id":"ends-in-error","name":"vm-1","plan":"standard-4","region":"eu-west-1","image":"ubuntu-22.04"}`,
			want: jobs.Event{RequestID: "ends-in-error", Kind: jobs.KindFailed, Metadata: map[string]string{},
				Error: &jobs.EventError{Code: "INSTANCE_FAILED"}, InstanceDeleted: ptr(true)},
			delete: true,
		},
		{
			name: "stuck pending",
			opt: func(wc *worker.Config, sc *cnsim.Config, _ *apiclient.Config) {
				sc.Faults.StuckPending = 1
				wc.ProvisionTimeout = time.Second
			},
			body: `{"request_id":"stuck","name":"vm-1","plan":"standard-4","region":"eu-west-1","image":"ubuntu-22.04"}`,
			want: jobs.Event{RequestID: "stuck", Kind: jobs.KindFailed, Metadata: map[string]string{},
				Error: &jobs.EventError{Code: "PROVISION_TIMEOUT"}, InstanceDeleted: ptr(true)},
			delete: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			e := newEnv(t, opts...)
			e.publish([]byte(tt.body), "")
			id := tt.want.RequestID
			if id == "" {
				id = ""
			}
			evs := e.waitTerminal(20*time.Second, id)[id]
			e.waitDrained(5 * time.Second)
			validateEvents(t, evs)
			last := normalized(evs[len(evs)-1].ev)
			if tt.delete {
				// The instance id and message depend on the simulator's ids.
				if last.InstanceID == "" {
					t.Fatalf("failed event has no instance_id: %+v", last)
				}
				wantMsg := map[string]string{
					"INSTANCE_FAILED":   fmt.Sprintf("instance %s reached status %q", last.InstanceID, "error"),
					"PROVISION_TIMEOUT": fmt.Sprintf("instance %s was not running 1s after it was created (last status %q)", last.InstanceID, "pending"),
				}[tt.want.Error.Code]
				tt.want.Error.Message = wantMsg
				tt.want.InstanceID = last.InstanceID
				if _, ok := e.sim.Instance(last.InstanceID); ok {
					t.Errorf("instance %s still exists in the simulator", last.InstanceID)
				}
				if got := kinds(evs); !reflect.DeepEqual(got, []jobs.Kind{jobs.KindCreated, jobs.KindFailed}) {
					t.Errorf("events %v, want [created failed]", got)
				}
			} else if len(evs) != 1 {
				t.Errorf("got %d events, want 1: %v", len(evs), kinds(evs))
			}
			if !reflect.DeepEqual(last, tt.want) {
				got, _ := json.Marshal(last)
				want, _ := json.Marshal(tt.want)
				t.Errorf("event\n got %s\nwant %s", got, want)
			}
			if tt.noAPI {
				for _, ep := range cnsim.Endpoints() {
					if n := e.sim.Calls(ep); n != 0 {
						t.Errorf("%d %s calls, want none", n, ep)
					}
				}
			}
		})
	}
}

// TestStormOnCreateClears: a 503 storm on create that clears completes the
// request with one instance.
func TestStormOnCreateClears(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(_ *worker.Config, sc *cnsim.Config, _ *apiclient.Config) {
		sc.Faults = cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{cnsim.EndpointCreate: 1}, ErrorStatus: 503, RetryAfter: time.Second}
	})
	e.publishRequest(request("storm"))
	deadline := time.Now().Add(10 * time.Second)
	for e.sim.Calls(cnsim.EndpointCreate) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d create calls during the storm", e.sim.Calls(cnsim.EndpointCreate))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.sim.Creates(); n != 0 {
		t.Fatalf("%d instances created during the storm", n)
	}
	e.sim.SetFaults(cnsim.Faults{})
	evs := e.waitTerminal(30*time.Second, "storm")["storm"]
	if got := kinds(evs); !reflect.DeepEqual(got, []jobs.Kind{jobs.KindCreated, jobs.KindCompleted}) {
		t.Fatalf("events %v, want [created completed]", got)
	}
	if n := e.sim.CreatesByName("vm-storm"); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	e.waitDrained(5 * time.Second)
}

// TestDuplicateRequest: the same request published twice (the second outside
// JetStream's duplicate window, so with another Nats-Msg-Id) yields one
// instance and the same terminal event twice.
func TestDuplicateRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shortDuplicateWindow)
	r := request("dup")
	body, _ := json.Marshal(r)
	e.publish(body, "dup")
	e.waitTerminal(20*time.Second, "dup")
	// Inside the window the events stream drops the same terminal event again.
	e.publish(body, "dup-inside")
	e.waitDrained(5 * time.Second)
	if n := len(byRequest(e.events())["dup"]); n != 2 {
		t.Fatalf("%d events after a duplicate inside the window, want 2", n)
	}
	time.Sleep(2 * dupWindow)
	e.publish(body, "dup-outside")
	evs := e.waitEvents(20*time.Second, "the terminal event again", func(evs []storedEvent) bool {
		return len(byRequest(evs)["dup"]) == 3
	})
	got := byRequest(evs)["dup"]
	if k := kinds(got); !reflect.DeepEqual(k, []jobs.Kind{jobs.KindCreated, jobs.KindCompleted, jobs.KindCompleted}) {
		t.Fatalf("events %v", k)
	}
	if string(got[1].data) != string(got[2].data) {
		t.Errorf("terminal events differ:\n%s\n%s", got[1].data, got[2].data)
	}
	if n := e.sim.CreatesByName("vm-dup"); n != 1 {
		t.Errorf("%d instances, want 1", n)
	}
	e.waitDrained(5 * time.Second)
}

const dupWindow = 500 * time.Millisecond

// shortDuplicateWindow lets a test publish "after the dedup window".
func shortDuplicateWindow(wc *worker.Config, _ *cnsim.Config, _ *apiclient.Config) {
	wc.DuplicateWindow = dupWindow
}

// TestIdempotencyConflict: the same request_id with another body is rejected
// and the original request is untouched.
func TestIdempotencyConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shortDuplicateWindow)
	orig := request("conflict")
	e.publishRequest(orig)
	first := e.waitTerminal(20*time.Second, "conflict")["conflict"]

	other := orig
	other.Name = "another-name"
	other.Metadata = map[string]string{"team": "search"}
	body, _ := json.Marshal(other)
	e.publish(body, "conflict-2")
	evs := e.waitEvents(20*time.Second, "rejected event", func(evs []storedEvent) bool {
		return len(byRequest(evs)["conflict"]) == 3
	})
	got := byRequest(evs)["conflict"]
	rejected := normalized(got[2].ev)
	want := jobs.Event{RequestID: "conflict", Kind: jobs.KindRejected, Metadata: map[string]string{"team": "search"}, StreamSequence: 2,
		Error: &jobs.EventError{Code: "IDEMPOTENCY_CONFLICT", Message: "request_id conflict was already used with a different body; the original request is unaffected"}}
	if !reflect.DeepEqual(rejected, want) {
		g, _ := json.Marshal(rejected)
		w, _ := json.Marshal(want)
		t.Errorf("rejected event\n got %s\nwant %s", g, w)
	}
	if got[2].subject != "provision.events.rejected.conflict" {
		t.Errorf("subject %s", got[2].subject)
	}
	if e.sim.CreatesByName("another-name") != 0 || e.sim.CreatesByName("vm-conflict") != 1 {
		t.Errorf("instances: original %d, conflicting %d", e.sim.CreatesByName("vm-conflict"), e.sim.CreatesByName("another-name"))
	}
	// The original still answers with its own outcome.
	time.Sleep(2 * dupWindow)
	e.publish(mustJSON(t, orig), "conflict-3")
	evs = e.waitEvents(20*time.Second, "original terminal again", func(evs []storedEvent) bool {
		return len(byRequest(evs)["conflict"]) == 4
	})
	again := byRequest(evs)["conflict"][3]
	if string(again.data) != string(first[1].data) {
		t.Errorf("original's terminal event changed:\n%s\n%s", first[1].data, again.data)
	}
	e.waitDrained(5 * time.Second)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validateEvents checks events against the JSON Schema of their kind.
func validateEvents(t *testing.T, evs []storedEvent) {
	t.Helper()
	for _, se := range evs {
		if err := schema.ValidateEvent(se.data); err != nil {
			t.Errorf("event on %s: %v", se.subject, err)
		}
	}
}

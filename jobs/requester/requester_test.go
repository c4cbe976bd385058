package requester_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cloudnexus/provisioner/internal/jstest"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/jobs/requester"
)

// newJetStream starts a bare JetStream server, with the requests and events
// streams the worker would create, and no worker: the test plays the worker.
func newJetStream(t *testing.T, subj jobs.Subjects) jetstream.JetStream {
	t.Helper()
	_, js := jstest.Connect(t, jstest.Run(t, ""))
	ctx := context.Background()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "PROVISION_REQUESTS", Subjects: []string{subj.Requests()}, Retention: jetstream.WorkQueuePolicy, Duplicates: 2 * time.Minute},
		{Name: "PROVISION_EVENTS", Subjects: []string{subj.Events()}, Duplicates: 2 * time.Minute},
	} {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func validRequest(id string) jobs.Request {
	return jobs.Request{RequestID: id, Name: "vm-" + id, Plan: "standard-4", Region: "eu-west-1", Image: "ubuntu-22.04",
		SSHKeys: []string{"ssh_key_a1b2c3"}, Metadata: map[string]string{"team": "payments"}}
}

// publishEvent stores an event as the worker would.
func publishEvent(t *testing.T, js jetstream.JetStream, subj jobs.Subjects, ev *jobs.Event) {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(subj.Event(ev.Kind, ev.RequestID))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, ev.MsgID())
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) (uint64, int) {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs, info.State.Consumers
}

// TestSubmit checks what Submit puts in the requests stream, under the
// default and a custom prefix: the request as JSON, with Nats-Msg-Id, once
// however many times it is submitted.
func TestSubmit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		subj    jobs.Subjects
		subject string
	}{
		{"default prefix", jobs.Subjects{}, "provision.requests.create"},
		{"custom prefix", jobs.Subjects{Prefix: "staging.provision"}, "staging.provision.requests.create"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			js := newJetStream(t, tt.subj)
			r := requester.New(js, requester.Options{Subjects: tt.subj})
			req := validRequest("req-submit")
			for range 2 {
				if err := r.Submit(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
			if n, _ := streamMsgs(t, js, "PROVISION_REQUESTS"); n != 1 {
				t.Fatalf("requests stream holds %d messages, want 1 (the second submit is a duplicate)", n)
			}
			s, _ := js.Stream(context.Background(), "PROVISION_REQUESTS")
			m, err := s.GetMsg(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.subject || m.Header.Get(jetstream.MsgIDHeader) != "req-submit" {
				t.Errorf("message on %s with Nats-Msg-Id %q", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
			}
			got, err := jobs.DecodeRequest(m.Data)
			if err != nil || !reflect.DeepEqual(got, req) {
				t.Errorf("stored request %+v (%v), want %+v", got, err, req)
			}
		})
	}
}

// TestSubmitInvalid checks that a request the worker would refuse is not
// published, and the error says why.
func TestSubmitInvalid(t *testing.T) {
	t.Parallel()
	js := newJetStream(t, jobs.Subjects{})
	r := requester.New(js, requester.Options{})
	tests := []struct {
		name   string
		change func(*jobs.Request)
		reject bool // a *jobs.RejectError rather than a *jobs.ValidationError
	}{
		{"empty name", func(r *jobs.Request) { r.Name = "" }, false},
		{"blank ssh key", func(r *jobs.Request) { r.SSHKeys = []string{" "} }, false},
		{"bad request_id", func(r *jobs.Request) { r.RequestID = "req 1" }, true},
		{"no request_id", func(r *jobs.Request) { r.RequestID = "" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest("req-invalid")
			tt.change(&req)
			err := r.Submit(context.Background(), req)
			var verr *jobs.ValidationError
			var rerr *jobs.RejectError
			if tt.reject && !errors.As(err, &rerr) || !tt.reject && !errors.As(err, &verr) {
				t.Errorf("Submit: %v", err)
			}
		})
	}
	if n, _ := streamMsgs(t, js, "PROVISION_REQUESTS"); n != 0 {
		t.Errorf("%d invalid requests were published", n)
	}
}

// TestSubmitNoStream checks that Submit fails when no stream stores the
// request: JetStream's acknowledgement is what Submit promises.
func TestSubmitNoStream(t *testing.T) {
	t.Parallel()
	js := newJetStream(t, jobs.Subjects{})
	r := requester.New(js, requester.Options{Subjects: jobs.Subjects{Prefix: "elsewhere"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Submit(ctx, validRequest("req-lost")); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("Submit: %v, want %v", err, jetstream.ErrNoStreamResponse)
	}
}

// TestWatch checks which event Watch stops at and what it reports on the
// way, with the events already in the stream before it starts.
func TestWatch(t *testing.T) {
	t.Parallel()
	subj := jobs.Subjects{}
	js := newJetStream(t, subj)
	at := time.Date(2025, 3, 14, 8, 22, 0, 0, time.UTC)
	ev := func(kind jobs.Kind, id string) *jobs.Event {
		e := jobs.NewEvent(kind, id, map[string]string{"team": "payments"}, at)
		switch kind {
		case jobs.KindFailed, jobs.KindRejected:
			e.Error = &jobs.EventError{Code: "X", Message: "x"}
			e.StreamSequence = 7
		}
		return e
	}
	// Other requests' events around, which Watch must skip.
	for _, e := range []*jobs.Event{
		ev(jobs.KindCreated, "req-other"),
		ev(jobs.KindCreated, "req-done"), ev(jobs.KindCompleted, "req-other"), ev(jobs.KindCompleted, "req-done"),
		ev(jobs.KindFailed, "req-failed"),
		ev(jobs.KindRejected, "req-conflict"),
		ev(jobs.KindCreated, "req-running"),
		ev(jobs.KindCreated, "req-done-prefix"), ev(jobs.KindCompleted, "req-done-prefix"),
	} {
		publishEvent(t, js, subj, e)
	}
	r := requester.New(js, requester.Options{})
	tests := []struct {
		id       string
		want     jobs.Kind // "" when Watch must time out
		progress []jobs.Kind
	}{
		{"req-done", jobs.KindCompleted, []jobs.Kind{jobs.KindCreated, jobs.KindCompleted}},
		{"req-failed", jobs.KindFailed, []jobs.Kind{jobs.KindFailed}},
		{"req-conflict", jobs.KindRejected, []jobs.Kind{jobs.KindRejected}},
		{"req-running", "", []jobs.Kind{jobs.KindCreated}},
		{"req-unknown", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			// An outcome comes at once; a request without one waits out the timeout.
			timeout := 10 * time.Second
			if tt.want == "" {
				timeout = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			var progress []jobs.Kind
			got, err := r.Watch(ctx, tt.id, func(e jobs.Event) {
				if e.RequestID != tt.id {
					t.Errorf("progress with an event of %s", e.RequestID)
				}
				progress = append(progress, e.Kind)
			})
			if tt.want == "" {
				if !errors.Is(err, context.DeadlineExceeded) || got != nil {
					t.Errorf("Watch: %v, %v; want a deadline error", got, err)
				}
			} else if err != nil || got.Kind != tt.want || got.RequestID != tt.id {
				t.Errorf("Watch: %+v, %v; want %s", got, err, tt.want)
			}
			if !reflect.DeepEqual(progress, tt.progress) {
				t.Errorf("progress %v, want %v", progress, tt.progress)
			}
		})
	}
	// Every ordered consumer was removed from the server.
	if _, consumers := streamMsgs(t, js, "PROVISION_EVENTS"); consumers != 0 {
		t.Errorf("%d consumers left on the events stream", consumers)
	}
}

// TestWaitForLaterEvent checks that Wait also sees an event published after
// it started.
func TestWaitForLaterEvent(t *testing.T) {
	t.Parallel()
	subj := jobs.Subjects{}
	js := newJetStream(t, subj)
	r := requester.New(js, requester.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		ev  *jobs.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := r.Wait(ctx, "req-later")
		done <- result{ev, err}
	}()
	// Let Wait's consumer start reading before the event exists; the result
	// is the same either way, the test just also covers this order.
	time.Sleep(100 * time.Millisecond)
	ev := jobs.NewEvent(jobs.KindCompleted, "req-later", nil, time.Now())
	publishEvent(t, js, subj, ev)
	res := <-done
	if res.err != nil || res.ev.Kind != jobs.KindCompleted {
		t.Errorf("Wait: %+v, %v", res.ev, res.err)
	}
}

// TestWatchInvalidID checks that Watch refuses an id that is no subject token.
func TestWatchInvalidID(t *testing.T) {
	t.Parallel()
	js := newJetStream(t, jobs.Subjects{})
	r := requester.New(js, requester.Options{})
	for _, id := range []string{"", "a.b", "*", ">"} {
		if _, err := r.Wait(context.Background(), id); err == nil {
			t.Errorf("Wait(%q) accepted it", id)
		}
	}
}

// TestWaitNoEventsStream checks the error when the events stream is not there.
func TestWaitNoEventsStream(t *testing.T) {
	t.Parallel()
	js := newJetStream(t, jobs.Subjects{})
	r := requester.New(js, requester.Options{EventsStream: "NOPE"})
	if _, err := r.Wait(context.Background(), "req-1"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Wait: %v, want %v", err, jetstream.ErrStreamNotFound)
	}
}

// TestProvisionAgain runs a request through a real worker twice: the second
// Provision publishes a duplicate that JetStream drops and the worker never
// answers again, and still gets the first outcome from the stream.
func TestProvisionAgain(t *testing.T) {
	t.Parallel()
	p, err := startPipeline()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	r := requester.New(p.js, requester.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var progress []jobs.Kind
	if err := r.Submit(ctx, validRequest("req-again")); err != nil {
		t.Fatal(err)
	}
	first, err := r.Watch(ctx, "req-again", func(e jobs.Event) { progress = append(progress, e.Kind) })
	if err != nil {
		t.Fatal(err)
	}
	if first.Kind != jobs.KindCompleted || !reflect.DeepEqual(progress, []jobs.Kind{jobs.KindCreated, jobs.KindCompleted}) {
		t.Fatalf("first: %s after %v", first.Kind, progress)
	}
	second, err := r.Provision(ctx, validRequest("req-again"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, first) {
		t.Errorf("second outcome %+v, want the first %+v", second, first)
	}
	if n := p.sim.CreatesByName("vm-req-again"); n != 1 {
		t.Errorf("%d instances created, want 1", n)
	}
}

package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/internal/jstest"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is one worker on a real JetStream server against the simulator.
type env struct {
	t    testing.TB
	ns   *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	sim  *cnsim.Server
	api  *apiclient.Client
	w    *worker.Worker
	subj jobs.Subjects

	stop func()
}

type envOption func(*worker.Config, *cnsim.Config, *apiclient.Config)

// fastConfig shrinks every wait so the tests take seconds, not minutes.
func fastConfig(wc *worker.Config, sc *cnsim.Config, ac *apiclient.Config) {
	wc.AckWait = 2 * time.Second
	wc.PollInitial = 20 * time.Millisecond
	wc.PollMax = 100 * time.Millisecond
	wc.ProvisionTimeout = 30 * time.Second
	wc.ShutdownTimeout = 5 * time.Second
	wc.AuthProbeInterval = 100 * time.Millisecond
	wc.FetchMaxWait = 500 * time.Millisecond
	wc.DeleteOnFailure = true
	wc.ManageStreams = true
	sc.ProvisionDelay = 100 * time.Millisecond
	ac.RetryInitial = 10 * time.Millisecond
	ac.RetryMaxInterval = 100 * time.Millisecond
	ac.RetryMaxElapsed = 20 * time.Second
	ac.Timeout = 5 * time.Second
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	wc, sc, ac := worker.Config{}, cnsim.Config{}, apiclient.Config{}
	fastConfig(&wc, &sc, &ac)
	for _, o := range opts {
		o(&wc, &sc, &ac)
	}
	e := &env{t: t, ns: jstest.Run(t, "")}
	var err error
	if e.sim, err = cnsim.Start(sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sim.Close)
	ac.BaseURL, ac.APIKey = e.sim.URL(), cnsim.DefaultAPIKey
	if e.api, err = apiclient.New(ac); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.api.Close)
	if e.nc, err = nats.Connect(e.ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	wc.JetStream, wc.API = e.js, e.api
	if wc.Logger == nil {
		wc.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	e.subj = wc.Subjects
	e.w = e.startWorker(wc)
	return e
}

// startWorker runs a worker until the test ends (or stop is called) and
// waits until its consumer is bound.
func (e *env) startWorker(wc worker.Config) *worker.Worker {
	t := e.t
	w, err := worker.New(wc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	e.stop = stop
	deadline := time.Now().Add(10 * time.Second)
	for w.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready: %v", w.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// publish publishes a create request body with Nats-Msg-Id msgID (none when empty).
func (e *env) publish(body []byte, msgID string) {
	e.t.Helper()
	msg := nats.NewMsg(e.subj.Create())
	msg.Data = body
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		e.t.Fatalf("publish: %v", err)
	}
}

func (e *env) publishRequest(r jobs.Request) {
	e.t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		e.t.Fatal(err)
	}
	e.publish(b, r.RequestID)
}

// storedEvent is an event as found in the events stream.
type storedEvent struct {
	subject string
	header  nats.Header
	data    []byte
	ev      jobs.Event
}

// events reads every event in the events stream.
func (e *env) events() []storedEvent {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, "PROVISION_EVENTS")
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []storedEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatal(err)
		}
		se := storedEvent{subject: m.Subject, header: m.Header, data: m.Data}
		if err := json.Unmarshal(m.Data, &se.ev); err != nil {
			e.t.Fatalf("event %d is not JSON: %v", seq, err)
		}
		out = append(out, se)
	}
	return out
}

// waitEvents waits until pred holds over the events stream, or fails.
func (e *env) waitEvents(timeout time.Duration, what string, pred func([]storedEvent) bool) []storedEvent {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := e.events()
		if pred(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			for _, se := range evs {
				e.t.Logf("event %s: %s", se.subject, se.data)
			}
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitTerminal waits until every id has a terminal event (or, with
// rejected, a rejected one) and returns the events by request_id.
func (e *env) waitTerminal(timeout time.Duration, ids ...string) map[string][]storedEvent {
	e.t.Helper()
	var by map[string][]storedEvent
	e.waitEvents(timeout, fmt.Sprintf("terminal events for %d requests", len(ids)), func(evs []storedEvent) bool {
		by = byRequest(evs)
		for _, id := range ids {
			done := false
			for _, se := range by[id] {
				if se.ev.Kind.Terminal() || se.ev.Kind == jobs.KindRejected {
					done = true
				}
			}
			if !done {
				return false
			}
		}
		return true
	})
	return by
}

func byRequest(evs []storedEvent) map[string][]storedEvent {
	by := make(map[string][]storedEvent)
	for _, se := range evs {
		by[se.ev.RequestID] = append(by[se.ev.RequestID], se)
	}
	return by
}

func kinds(evs []storedEvent) []jobs.Kind {
	out := make([]jobs.Kind, len(evs))
	for i, se := range evs {
		out[i] = se.ev.Kind
	}
	return out
}

// requestsLeft returns the number of messages in the requests stream.
func (e *env) requestsLeft() uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), "PROVISION_REQUESTS")
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// waitDrained waits until the requests stream is empty.
func (e *env) waitDrained(timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for e.requestsLeft() != 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("requests stream still holds %d messages", e.requestsLeft())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request returns a valid request the simulator accepts.
func request(id string) jobs.Request {
	return jobs.Request{RequestID: id, Name: "vm-" + id, Plan: "standard-4", Region: "eu-west-1", Image: "ubuntu-22.04", Metadata: map[string]string{"team": "payments"}}
}

// normalized blanks what changes from run to run (times, durations) so an
// event can be compared with an exact expected one.
func normalized(ev jobs.Event) jobs.Event {
	ev.Time = time.Time{}
	ev.DurationMS = 0
	if ev.Instance != nil {
		inst := *ev.Instance
		inst.CreatedAt = nil
		ev.Instance = &inst
	}
	return ev
}

func ptr[T any](v T) *T { return &v }

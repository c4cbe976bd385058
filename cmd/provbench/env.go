package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// broker is an in-process NATS server with JetStream whose store lives in a
// temporary directory that close removes. Every scenario gets a fresh one so
// that no scenario pays for another's streams.
type broker struct {
	ns  *server.Server
	dir string
}

func startBroker() (*broker, error) {
	dir, err := os.MkdirTemp("", "provbench-js-")
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = os.RemoveAll(dir)
		return nil, errors.New("nats server not ready after 10s")
	}
	return &broker{ns: ns, dir: dir}, nil
}

func (b *broker) url() string { return b.ns.ClientURL() }

// connect returns a connection and its JetStream context; the connection
// is the caller's to close.
func (b *broker) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(b.url(), nats.Name(name))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (b *broker) close() {
	b.ns.Shutdown()
	b.ns.WaitForShutdown()
	_ = os.RemoveAll(b.dir)
}

// callRecorder counts what the simulator is asked, from outside it, so the
// figures do not depend on what the worker says about itself.
type callRecorder struct {
	mu       sync.Mutex
	total    int
	byEP     map[cnsim.Endpoint]int
	gets     map[string]int // GET /v1/instances/{id} by id
	creates  []time.Time    // arrival of every POST /v1/instances
	first503 time.Time      // when the first 503 was answered
	running  map[string]time.Time
}

func newCallRecorder() *callRecorder {
	return &callRecorder{byEP: make(map[cnsim.Endpoint]int), gets: make(map[string]int), running: make(map[string]time.Time)}
}

// wrap returns h with every call recorded.
func (r *callRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		arrived := time.Now()
		ep, id := endpointOf(req)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, req)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.total++
		r.byEP[ep]++
		switch ep {
		case cnsim.EndpointGet:
			r.gets[id]++
		case cnsim.EndpointCreate:
			r.creates = append(r.creates, arrived)
			if sw.status == http.StatusServiceUnavailable && r.first503.IsZero() {
				r.first503 = time.Now()
			}
		}
	})
}

// provisionTime wraps a simulator's ProvisionTime so that the moment each
// instance (by name) starts running is known.
func (r *callRecorder) provisionTime(f func(apiclient.CreateInstanceRequest) time.Duration) func(apiclient.CreateInstanceRequest) time.Duration {
	return func(req apiclient.CreateInstanceRequest) time.Duration {
		d := f(req)
		r.mu.Lock()
		r.running[req.Name] = time.Now().Add(d)
		r.mu.Unlock()
		return d
	}
}

func (r *callRecorder) snapshot() (total int, byEP map[cnsim.Endpoint]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byEP = make(map[cnsim.Endpoint]int, len(r.byEP))
	for k, v := range r.byEP {
		byEP[k] = v
	}
	return r.total, byEP
}

func endpointOf(req *http.Request) (cnsim.Endpoint, string) {
	const instances = "/v1/instances"
	p := req.URL.Path
	switch {
	case p == instances && req.Method == http.MethodPost:
		return cnsim.EndpointCreate, ""
	case p == instances:
		return cnsim.EndpointList, ""
	case strings.HasPrefix(p, instances+"/") && req.Method == http.MethodDelete:
		return cnsim.EndpointDelete, ""
	case strings.HasPrefix(p, instances+"/"):
		return cnsim.EndpointGet, p[len(instances)+1:]
	}
	return cnsim.EndpointMe, ""
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// simAPI is the CloudNexus simulator behind a call recorder, on a loopback port.
type simAPI struct {
	sim *cnsim.Server
	ts  *httptest.Server
	rec *callRecorder
}

func startSim(cfg cnsim.Config) (*simAPI, error) {
	rec := newCallRecorder()
	if cfg.ProvisionTime != nil {
		cfg.ProvisionTime = rec.provisionTime(cfg.ProvisionTime)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sim := cnsim.New(cfg)
	ts := httptest.NewUnstartedServer(rec.wrap(sim))
	// The simulator is not what is measured: keep its server from logging
	// the connection resets a stopping worker causes.
	ts.Config.ErrorLog = nil
	ts.Config.Protocols = cnsim.Protocols()
	ts.Start()
	return &simAPI{sim: sim, ts: ts, rec: rec}, nil
}

func (s *simAPI) url() string { return s.ts.URL + "/v1" }

func (s *simAPI) close() {
	s.sim.Close()
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// inprocWorker is a worker run in the benchmark's own process, configured
// as cmd/provisioner configures it.
type inprocWorker struct {
	w      *worker.Worker
	api    *apiclient.Client
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

// benchLogger logs as the provisioner does by default (JSON, info), into
// io.Discard: encoding is part of the cost measured, the terminal is not.
func benchLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))
}

// startWorker starts a worker on b against apiURL and waits until it takes
// jobs. wc.JetStream and wc.API are filled in; ac.BaseURL and ac.APIKey too.
func startWorker(b *broker, apiURL string, wc worker.Config, ac apiclient.Config) (*inprocWorker, error) {
	nc, js, err := b.connect("provbench-worker")
	if err != nil {
		return nil, err
	}
	ac.BaseURL, ac.APIKey = apiURL, cnsim.DefaultAPIKey
	if ac.MaxConnsPerHost == 0 {
		ac.MaxConnsPerHost = min(wc.Concurrency, 256) // as cmd/provisioner does (maxAPIConns)
	}
	api, err := apiclient.New(ac)
	if err != nil {
		nc.Close()
		return nil, err
	}
	wc.JetStream, wc.API = js, api
	wc.ManageStreams = true
	wc.DeleteOnFailure = true
	if wc.Logger == nil {
		wc.Logger = benchLogger()
	}
	w, err := worker.New(wc)
	if err != nil {
		api.Close()
		nc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &inprocWorker{w: w, api: api, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for w.Ready() != nil {
		select {
		case err := <-p.done:
			cancel()
			api.Close()
			nc.Close()
			return nil, fmt.Errorf("worker stopped at start: %w", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("worker not ready after 20s: %v", w.Ready())
		}
	}
	return p, nil
}

// stop stops the worker and waits for Run to return.
func (p *inprocWorker) stop() {
	p.cancel()
	<-p.done
	p.api.Close()
	p.nc.Close()
}

// ensureStreams creates the streams, consumer and bucket the worker would,
// so that requests published before the worker starts are kept.
func ensureStreams(ctx context.Context, js jetstream.JetStream) error {
	var wc worker.Config
	wc.RequestsStream, wc.EventsStream, wc.Consumer, wc.KVBucket = "PROVISION_REQUESTS", "PROVISION_EVENTS", "provisioner", "provision_jobs"
	wc.Replicas, wc.DuplicateWindow, wc.EventsMaxAge, wc.AckWait = 1, 2*time.Minute, 7*24*time.Hour, 30*time.Second
	if _, err := js.CreateOrUpdateStream(ctx, wc.RequestsStreamConfig()); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, wc.EventsStreamConfig()); err != nil {
		return err
	}
	return nil
}

// request is the create request of job i of a scenario.
func request(prefix string, i int, plan, region string) jobs.Request {
	id := fmt.Sprintf("%s-%06d", prefix, i)
	return jobs.Request{RequestID: id, Name: "vm-" + id, Plan: plan, Region: region, Image: "ubuntu-22.04",
		SSHKeys: []string{"ssh_key_bench"}, Metadata: map[string]string{"team": "bench"}}
}

// publishAll publishes reqs with async publishes (Nats-Msg-Id set to the
// request_id) and waits for every acknowledgement.
func publishAll(ctx context.Context, js jetstream.JetStream, reqs []jobs.Request) error {
	const window = 2000 // acks outstanding at most
	futures := make([]jetstream.PubAckFuture, 0, window)
	flush := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish request: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	for _, r := range reqs {
		msg, err := requestMsg(r)
		if err != nil {
			return err
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publish request: %w", err)
		}
		futures = append(futures, f)
		if len(futures) == window {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// publishOne publishes one request and waits for its acknowledgement.
func publishOne(ctx context.Context, js jetstream.JetStream, r jobs.Request) error {
	msg, err := requestMsg(r)
	if err != nil {
		return err
	}
	_, err = js.PublishMsg(ctx, msg)
	return err
}

// requestMsg is the message a requester publishes for r, with its
// request_id as the Nats-Msg-Id.
func requestMsg(r jobs.Request) (*nats.Msg, error) {
	var subj jobs.Subjects
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subj.Create())
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, r.RequestID)
	return msg, nil
}

// terminal is the first terminal event seen for a request.
type terminal struct {
	kind     jobs.Kind
	received time.Time
	body     []byte // kept only when the collector keeps bodies
}

// collector counts events from a core subscription to every event subject.
// It counts request_ids, not messages, so a duplicate publish is not a second
// job. Core delivery is enough here: the harness's connection subscribes
// before any request is published and has no pending limit.
type collector struct {
	subs []*nats.Subscription
	want int
	keep bool

	mu          sync.Mutex
	created     map[string]time.Time
	terminals   map[string]terminal
	rejected    int
	failed      int
	allCreated  chan struct{}
	allTerminal chan struct{}
	firstDone   time.Time
}

// newCollector subscribes to the events of want requests: only to the
// terminal and rejected ones unless withCreated, so that the harness's own
// share of a run's CPU (the server delivering each event to it, the client
// decoding it) stays small.
func newCollector(nc *nats.Conn, want int, keepBodies, withCreated bool) (*collector, error) {
	c := &collector{want: want, keep: keepBodies, created: make(map[string]time.Time, want),
		terminals: make(map[string]terminal, want), allCreated: make(chan struct{}), allTerminal: make(chan struct{})}
	var subj jobs.Subjects
	subjects := []string{subj.Events()}
	if !withCreated {
		subjects = nil
		for _, k := range []jobs.Kind{jobs.KindCompleted, jobs.KindFailed, jobs.KindRejected} {
			subjects = append(subjects, subj.Event(k, "*"))
		}
	}
	for _, s := range subjects {
		sub, err := nc.Subscribe(s, c.handle)
		if err == nil {
			c.subs = append(c.subs, sub)
			err = sub.SetPendingLimits(-1, -1)
		}
		if err != nil {
			c.close()
			return nil, err
		}
	}
	if err := nc.Flush(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// handle reads the kind and request_id from the subject
// provision.events.<kind>.<request_id>.
func (c *collector) handle(m *nats.Msg) {
	now := time.Now()
	rest, ok := strings.CutPrefix(m.Subject, "provision.events.")
	if !ok {
		return
	}
	kind, id, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch k := jobs.Kind(kind); {
	case k == jobs.KindCreated:
		if _, seen := c.created[id]; seen {
			return
		}
		c.created[id] = now
		if len(c.created) == c.want {
			close(c.allCreated)
		}
	case k.Terminal():
		if _, seen := c.terminals[id]; seen {
			return
		}
		t := terminal{kind: k, received: now}
		if c.keep {
			t.body = append([]byte(nil), m.Data...)
		}
		c.terminals[id] = t
		if k == jobs.KindFailed {
			c.failed++
		}
		if len(c.terminals) == 1 {
			c.firstDone = now
		}
		if len(c.terminals) == c.want {
			close(c.allTerminal)
		}
	case k == jobs.KindRejected:
		c.rejected++
	}
}

// counts returns how many requests have a created and a terminal event.
func (c *collector) counts() (created, terminal, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.created), len(c.terminals), c.failed
}

// times returns the receive times of the terminal events, in arrival order
// not guaranteed; callers sort.
func (c *collector) terminalTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, 0, len(c.terminals))
	for _, t := range c.terminals {
		out = append(out, t.received)
	}
	return out
}

func (c *collector) terminalsCopy() map[string]terminal {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]terminal, len(c.terminals))
	for k, v := range c.terminals {
		out[k] = v
	}
	return out
}

// waitAll waits until every request has a terminal event, or timeout.
func (c *collector) waitAll(ctx context.Context, timeout time.Duration) error {
	return c.waitChan(ctx, c.allTerminal, timeout, "terminal")
}

func (c *collector) waitCreated(ctx context.Context, timeout time.Duration) error {
	return c.waitChan(ctx, c.allCreated, timeout, "created")
}

func (c *collector) waitChan(ctx context.Context, ch chan struct{}, timeout time.Duration, what string) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		created, term, _ := c.counts()
		return fmt.Errorf("timed out after %s waiting for every %s event: %d of %d created, %d terminal", timeout, what, created, c.want, term)
	}
}

func (c *collector) close() {
	for _, sub := range c.subs {
		_ = sub.Unsubscribe()
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/internal/jstest"
	"github.com/cloudnexus/provisioner/worker"
)

// probeClient makes one connection per request, so that no keep-alive
// connection outlives the test.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// get returns the status and body of GET base+path.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := probeClient.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// scrape is one parsed /metrics exposition.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, base string) scrape {
	t.Helper()
	status, body := get(t, base, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// value sums the series of family name whose labels include labels (name,
// value pairs): counter and gauge values, or a histogram's sample count. ok
// is false when no series matches.
func (s scrape) value(name string, labels ...string) (v float64, ok bool) {
	fam := s[name]
	if fam == nil {
		return 0, false
	}
series:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue series
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v, ok
}

// must returns the value of a series that must exist.
func (s scrape) must(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.value(name, labels...)
	if !ok {
		t.Errorf("no series %s%v", name, labels)
	}
	return v
}

// waitFor polls until cond holds, or fails the test with what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startProvisioner runs the program as main does, with the environment the
// test set, until the test ends; it returns the base URL of its HTTP
// endpoints once /readyz says ready. On cleanup it stops it and checks it
// exits 0.
func startProvisioner(t *testing.T) string {
	t.Helper()
	t.Setenv("PROVISIONER_HTTP_ADDR", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, &stdout, &stderr) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if stopped {
			return
		}
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit code %d, want 0\nstderr:\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("did not stop")
		}
	})

	listening := regexp.MustCompile(`"msg":"serving /healthz, /readyz and /metrics","addr":"([^"]+)"`)
	var base string
	deadline := time.Now().Add(20 * time.Second)
	for base == "" {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("exited with %d before listening\nstderr:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening\nstderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 20*time.Second, "/readyz to say ready", func() bool {
		status, _ := get(t, base, "/readyz")
		return status == http.StatusOK
	})
	return base
}

// setWorkerEnv points the program at ns and sim with short waits.
func setWorkerEnv(t *testing.T, natsURL, apiURL string) {
	t.Helper()
	for k, v := range map[string]string{
		"NATS_URL":                           natsURL,
		"CLOUDNEXUS_API_URL":                 apiURL,
		"CLOUDNEXUS_API_KEY":                 cnsim.DefaultAPIKey,
		"PROVISIONER_POLL_INITIAL":           "20ms",
		"PROVISIONER_POLL_MAX":               "100ms",
		"PROVISIONER_RETRY_INITIAL":          "10ms",
		"PROVISIONER_RETRY_MAX_INTERVAL":     "50ms",
		"PROVISIONER_RETRY_MAX_ELAPSED":      "20s",
		"PROVISIONER_SHUTDOWN_TIMEOUT":       "5s",
		"PROVISIONER_LOG_LEVEL":              "info",
		"PROVISIONER_LOG_FORMAT":             "json",
		"OTEL_TRACES_EXPORTER":               "",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
	} {
		t.Setenv(k, v)
	}
}

// publishRaw publishes body as a create request, with msgID as Nats-Msg-Id
// when not empty and the extra headers.
func publishRaw(t *testing.T, js jetstream.JetStream, body, msgID string, header map[string]string) {
	t.Helper()
	msg := nats.NewMsg("provision.requests.create")
	msg.Data = []byte(body)
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	for k, v := range header {
		msg.Header.Set(k, v)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func validRequest(id string) string {
	b, _ := json.Marshal(map[string]any{"request_id": id, "name": "vm-" + id, "plan": "standard-4", "region": "eu-west-1", "image": "ubuntu-22.04"})
	return string(b)
}

// TestMetricsEndToEnd runs the program against NATS and the simulator,
// publishes valid, invalid and malformed requests, and checks that /metrics
// counts what happened, and what the simulator saw.
func TestMetricsEndToEnd(t *testing.T) {
	ns := jstest.Run(t, "")
	// Half the polls answer 503, so that the client retries.
	sim, err := cnsim.Start(cnsim.Config{ProvisionDelay: 100 * time.Millisecond, Seed: 7,
		Faults: cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{cnsim.EndpointGet: 0.5}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	setWorkerEnv(t, ns.ClientURL(), sim.URL())
	base := startProvisioner(t)

	if status, _ := get(t, base, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var finished atomic.Int64
	sub, err := nc.Subscribe("provision.events.>", func(m *nats.Msg) {
		if !strings.HasPrefix(m.Subject, "provision.events.created.") {
			finished.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	const valid, invalid = 4, 3
	for i := range valid {
		id := fmt.Sprintf("ok-%d", i)
		publishRaw(t, js, validRequest(id), id, nil)
	}
	for i := range invalid {
		id := fmt.Sprintf("bad-%d", i)
		publishRaw(t, js, fmt.Sprintf(`{"request_id":%q,"name":"x","region":"eu-west-1","image":"ubuntu-22.04"}`, id), id, nil)
	}
	publishRaw(t, js, "not json", "", nil)

	// Scraping only once the jobs are done keeps the cached consumer counts
	// from being those of the middle of the run.
	waitFor(t, 30*time.Second, "every request's last event", func() bool { return finished.Load() == valid+invalid+1 })
	var s scrape
	waitFor(t, 30*time.Second, "every job to finish and the consumer to drain", func() bool {
		s = scrapeMetrics(t, base)
		done, _ := s.value("provisioner_jobs_total")
		inFlight, _ := s.value("provisioner_jobs_in_flight")
		pending, okP := s.value("provisioner_consumer_pending_messages")
		ackPending, okA := s.value("provisioner_consumer_ack_pending_messages")
		return done == valid+invalid+1 && inFlight == 0 && okP && okA && pending == 0 && ackPending == 0
	})

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"provisioner_jobs_total", []string{"outcome", "completed", "code", ""}, valid},
		{"provisioner_jobs_total", []string{"outcome", "failed", "code", "INVALID_REQUEST"}, invalid},
		{"provisioner_jobs_total", []string{"outcome", "rejected", "code", "MALFORMED_MESSAGE"}, 1},
		{"provisioner_job_duration_seconds", []string{"outcome", "completed"}, valid},
		{"provisioner_job_duration_seconds", []string{"outcome", "failed"}, invalid},
		{"provisioner_time_to_running_seconds", nil, valid},
		{"provisioner_api_requests_total", []string{"endpoint", "create", "status", "201"}, valid},
		{"provisioner_api_requests_total", []string{"endpoint", "create"}, float64(sim.Calls(cnsim.EndpointCreate))},
		{"provisioner_api_requests_total", []string{"endpoint", "get"}, float64(sim.Calls(cnsim.EndpointGet))},
		{"provisioner_api_request_duration_seconds", []string{"endpoint", "get"}, float64(sim.Calls(cnsim.EndpointGet))},
		{"provisioner_api_retries_total", []string{"endpoint", "create"}, 0},
		// Every 503 of a poll is retried at once by the client.
		{"provisioner_api_retries_total", []string{"endpoint", "get"}, s.must(t, "provisioner_api_requests_total", "endpoint", "get", "status", "503")},
		{"provisioner_redeliveries_total", nil, 0},
		{"provisioner_jobs_handed_back_total", nil, 0},
		{"provisioner_jobs_in_flight", nil, 0},
		{"provisioner_ready", nil, 1},
		{"provisioner_paused", nil, 0},
	} {
		if got := s.must(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if retries := s.must(t, "provisioner_api_retries_total", "endpoint", "get"); retries == 0 {
		t.Error("no get was retried: the 503s did not happen or were not counted")
	}
	if _, ok := s.value("go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}
}

// TestReadyz checks /readyz (and the ready and paused gauges) going
// not-ready when NATS is lost and when the API rejects the key, and ready
// again once NATS is back and the key accepted; /healthz stays ok.
func TestReadyz(t *testing.T) {
	dir := t.TempDir()
	ns := jstest.Run(t, dir)
	port := ns.Addr().(*net.TCPAddr).Port
	sim, err := cnsim.Start(cnsim.Config{ProvisionDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))

	nc, err := connectNATS(ns.ClientURL(), &config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	api, err := apiclient.New(apiclient.Config{BaseURL: sim.URL(), APIKey: cnsim.DefaultAPIKey, Observer: m.observeAPICall,
		RetryInitial: 10 * time.Millisecond, RetryMaxInterval: 50 * time.Millisecond, RetryMaxElapsed: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	w, err := worker.New(worker.Config{
		JetStream: js, API: api, ManageStreams: true, Logger: log, Hooks: m.hooks(),
		AckWait: 2 * time.Second, PollInitial: 20 * time.Millisecond, PollMax: 100 * time.Millisecond,
		AuthProbeInterval: 100 * time.Millisecond, FetchMaxWait: 200 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.watch(w, nc)
	srv := httptest.NewServer(httpHandler(w, nc, m.reg))
	t.Cleanup(srv.Close)

	// Before Run: alive is false, and not ready.
	if status, _ := get(t, srv.URL, "/healthz"); status != http.StatusServiceUnavailable {
		t.Errorf("/healthz before Run: %d, want 503", status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	check := func(what string, wantReady bool, bodyHas string, gauges map[string]float64) {
		t.Helper()
		want := http.StatusOK
		if !wantReady {
			want = http.StatusServiceUnavailable
		}
		var body string
		waitFor(t, 20*time.Second, what, func() bool {
			var status int
			status, body = get(t, srv.URL, "/readyz")
			return status == want
		})
		if !strings.Contains(body, bodyHas) {
			t.Errorf("%s: /readyz body %q, want it to mention %q", what, body, bodyHas)
		}
		if status, _ := get(t, srv.URL, "/healthz"); status != http.StatusOK {
			t.Errorf("%s: /healthz %d, want 200", what, status)
		}
		s := scrapeMetrics(t, srv.URL)
		for name, v := range gauges {
			if got := s.must(t, name); got != v {
				t.Errorf("%s: %s = %v, want %v", what, name, got, v)
			}
		}
	}

	check("ready at start", true, "ok", map[string]float64{"provisioner_ready": 1, "provisioner_paused": 0})

	ns.Shutdown()
	ns.WaitForShutdown()
	check("not ready without NATS", false, "NATS not connected", map[string]float64{"provisioner_ready": 0, "provisioner_paused": 0})
	jstest.RunOnPort(t, port, dir)
	check("ready with NATS back", true, "ok", map[string]float64{"provisioner_ready": 1})

	sim.SetAPIKey("cn_test_another_key")
	publishRaw(t, js, validRequest("req-401"), "req-401", nil)
	check("not ready while the key is rejected", false, "paused", map[string]float64{"provisioner_ready": 0, "provisioner_paused": 1})
	sim.SetAPIKey(cnsim.DefaultAPIKey)
	check("ready once the key is accepted", true, "ok", map[string]float64{"provisioner_paused": 0})

	var s scrape
	waitFor(t, 20*time.Second, "the request held up by the 401 to complete", func() bool {
		s = scrapeMetrics(t, srv.URL)
		v, _ := s.value("provisioner_jobs_total", "outcome", "completed")
		return v == 1
	})
	if got := s.must(t, "provisioner_jobs_handed_back_total", "reason", "auth"); got < 1 {
		t.Errorf("jobs handed back for auth = %v, want at least 1", got)
	}
	if got := s.must(t, "provisioner_api_requests_total", "endpoint", "create", "status", "401"); got < 1 {
		t.Errorf("creates answered 401 = %v, want at least 1", got)
	}
	if got := s.must(t, "provisioner_redeliveries_total"); got < 1 {
		t.Errorf("redeliveries = %v, want at least 1 (the request handed back)", got)
	}
}

// TestConsumerCollector checks the consumer gauges against a real consumer:
// nothing before it is bound, its counts, the cache between refreshes, and
// nothing once NATS cannot be asked.
func TestConsumerCollector(t *testing.T) {
	ns := jstest.Run(t, "")
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	pub := func(n int) {
		for range n {
			if _, err := js.Publish(ctx, "s.x", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}

	var bound jetstream.Consumer
	now := time.Unix(1000, 0)
	c := newConsumerCollector(func() jetstream.Consumer { return bound })
	c.now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	collect := func() map[string]float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			out[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
		}
		return out
	}
	want := func(pending, ackPending float64) map[string]float64 {
		return map[string]float64{"provisioner_consumer_pending_messages": pending, "provisioner_consumer_ack_pending_messages": ackPending}
	}
	equal := func(a, b map[string]float64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

	pub(3)
	if got := collect(); len(got) != 0 {
		t.Errorf("before the consumer is bound: %v, want nothing", got)
	}
	bound = cons
	now = now.Add(consumerInfoEvery)
	if got := collect(); !equal(got, want(3, 0)) {
		t.Errorf("3 published: %v, want %v", got, want(3, 0))
	}

	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // delivered, not acked
	}
	pub(1)
	now = now.Add(consumerInfoEvery - time.Millisecond)
	if got := collect(); !equal(got, want(3, 0)) {
		t.Errorf("within the cache interval: %v, want the cached %v", got, want(3, 0))
	}
	now = now.Add(time.Millisecond)
	if got := collect(); !equal(got, want(3, 1)) {
		t.Errorf("after the cache interval: %v, want %v", got, want(3, 1))
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	now = now.Add(consumerInfoEvery)
	if got := collect(); len(got) != 0 {
		t.Errorf("NATS gone: %v, want nothing rather than stale numbers", got)
	}
}

func TestCodeLabel(t *testing.T) {
	tests := []struct{ name, code, want string }{
		{name: "none", code: "", want: ""},
		{name: "contract code", code: "INVALID_REQUEST", want: "INVALID_REQUEST"},
		{name: "API code", code: "QUOTA_EXCEEDED", want: "QUOTA_EXCEEDED"},
		{name: "HTTP status code", code: "HTTP_418", want: "HTTP_418"},
		{name: "free text", code: "something went wrong", want: "OTHER"},
		{name: "too long", code: strings.Repeat("A", 65), want: "OTHER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeLabel(tt.code); got != tt.want {
				t.Errorf("codeLabel(%q) = %q, want %q", tt.code, got, tt.want)
			}
		})
	}
}

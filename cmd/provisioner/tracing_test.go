package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/internal/jstest"
)

var otelVars = []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}

// TestTracingOffUnlessConfigured checks that traces are exported only when
// the OTEL_* variables configure an exporter, never by default.
func TestTracingOffUnlessConfigured(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "nothing set", env: nil, on: false},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, on: false},
		{name: "none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: false},
		{name: "SDK disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: false},
		{name: "OTLP endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{name: "OTLP traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, on: true},
		{name: "exporter otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "exporter console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, on: true},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "carrier-pigeon"}, wantErr: "OTEL_TRACES_EXPORTER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range otelVars {
				t.Setenv(k, tt.env[k])
			}
			tr, err := newTracing(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newTracing error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := tr.shutdown(context.Background()); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			}()
			_, isSDK := tr.provider.(*sdktrace.TracerProvider)
			if tr.enabled() != tt.on || isSDK != tt.on || (tr.apiHTTPClient(apiclient.Config{MaxConnsPerHost: 8}) != nil) != tt.on {
				t.Errorf("tracing on = %t (SDK provider %t), want %t", tr.enabled(), isSDK, tt.on)
			}
			if !tt.on && len(tr.propagator.Fields()) != 0 {
				t.Errorf("tracing off propagates %v, want nothing", tr.propagator.Fields())
			}
		})
	}
}

// TestTracingEndToEnd runs the program with an OTLP endpoint configured and
// checks that the request's trace reaches the API calls, the events and the
// collector, whose spans arrive by the time the program has exited.
func TestTracingEndToEnd(t *testing.T) {
	const (
		traceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentSpan = "00f067aa0ba902b7"
	)
	// A collector that keeps the spans it receives.
	var mu sync.Mutex
	var spans []*tracepb.Span
	services := map[string]bool{}
	collector := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(rw, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					services[kv.GetValue().GetStringValue()] = true
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
		mu.Unlock()
		rw.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()

	// The simulator, behind a server that records the traceparent of each call.
	sim := cnsim.New(cnsim.Config{ProvisionDelay: 50 * time.Millisecond})
	defer sim.Close()
	var apiTraceparents []string
	api := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		apiTraceparents = append(apiTraceparents, r.Method+" "+r.URL.Path+" "+r.Header.Get("traceparent"))
		mu.Unlock()
		sim.ServeHTTP(rw, r)
	}))
	defer api.Close()

	ns := jstest.Run(t, "")
	setWorkerEnv(t, ns.ClientURL(), api.URL+"/v1")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "provisioner-test")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, &stdout, &stderr) }()

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	events, err := nc.SubscribeSync("provision.events.>")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	waitFor(t, 20*time.Second, "the requests stream", func() bool {
		_, err := js.Stream(ctx, "PROVISION_REQUESTS")
		return err == nil
	})
	publishRaw(t, js, validRequest("req-traced"), "req-traced", map[string]string{"traceparent": "00-" + traceID + "-" + parentSpan + "-01"})

	var eventParents []string
	for {
		m, err := events.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("waiting for events: %v\nstderr:\n%s", err, stderr.String())
		}
		eventParents = append(eventParents, m.Subject+" "+m.Header.Get("traceparent"))
		if strings.HasPrefix(m.Subject, "provision.events.completed.") {
			break
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d\nstderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop")
	}

	mu.Lock()
	defer mu.Unlock()
	var job *tracepb.Span
	clients := 0
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) != traceID {
			continue
		}
		switch s.GetKind() {
		case tracepb.Span_SPAN_KIND_CONSUMER:
			job = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			clients++
		}
	}
	if job == nil {
		t.Fatalf("the collector got no job span in trace %s; got %d spans", traceID, len(spans))
	}
	if got := hex.EncodeToString(job.GetParentSpanId()); got != parentSpan {
		t.Errorf("job span's parent %s, want the request's %s", got, parentSpan)
	}
	if clients < 2 {
		t.Errorf("the collector got %d API call spans in the trace, want at least 2 (create, get)", clients)
	}
	for _, line := range apiTraceparents {
		if !strings.Contains(line, "-"+traceID+"-") {
			t.Errorf("API call without the request's trace: %s", line)
		}
	}
	if len(apiTraceparents) < 2 {
		t.Errorf("API saw %d calls, want at least 2", len(apiTraceparents))
	}
	if !services["provisioner-test"] || len(services) != 1 {
		t.Errorf("spans came from services %v, want only OTEL_SERVICE_NAME's provisioner-test", services)
	}
	jobSpan := hex.EncodeToString(job.GetSpanId())
	for _, line := range eventParents {
		if !strings.HasSuffix(line, "00-"+traceID+"-"+jobSpan+"-01") {
			t.Errorf("event traceparent: %s, want the job span %s of trace %s", line, jobSpan, traceID)
		}
	}
}

// TestTracedClientDoesNotReplayCreate checks that the traced HTTP client
// keeps apiclient's guarantee: a create whose reused connection drops before
// the answer is not sent again by the transport, since the API may have made
// the instance.
func TestTracedClientDoesNotReplayCreate(t *testing.T) {
	sdk := sdktrace.NewTracerProvider()
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	tr := &tracing{provider: sdk, propagator: propagation.TraceContext{}, sdk: sdk}
	hc := tr.apiHTTPClient(apiclient.Config{MaxConnsPerHost: 4})
	defer hc.CloseIdleConnections()

	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			rw.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(rw, `{"id":"acct_1"}`)
			return
		}
		posts.Add(1)
		conn, _, err := rw.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	}))
	defer srv.Close()
	api, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/v1", APIKey: cnsim.DefaultAPIKey, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A keep-alive connection first, so the create goes out on a reused one.
	if _, err := api.Me(ctx); err != nil {
		t.Fatalf("Me: %v", err)
	}
	if _, err := api.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "n", Plan: "p", Region: "r", Image: "i"}, "req-1"); err == nil {
		t.Fatal("create on a dropped connection succeeded")
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("server received %d creates, want 1: the transport sent it again", n)
	}
}

package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
	"github.com/cloudnexus/provisioner/internal/jstest"
	"github.com/cloudnexus/provisioner/jobs"
	"github.com/cloudnexus/provisioner/worker"
)

// seenCall is one request the simulator received and the trace context it carried.
type seenCall struct {
	method, path string
	sc           trace.SpanContext
}

// newTracedEnv is newEnv with tracing: the worker traces with tp and
// prop, its API client sends through otelhttp, and the simulator sits behind
// a server that records the trace context of every request.
func newTracedEnv(t *testing.T, tp trace.TracerProvider, prop propagation.TextMapPropagator) (*env, func() []seenCall) {
	t.Helper()
	wc, sc, ac := worker.Config{}, cnsim.Config{}, apiclient.Config{}
	fastConfig(&wc, &sc, &ac)
	e := &env{t: t, ns: jstest.Run(t, "")}

	e.sim = cnsim.New(sc)
	t.Cleanup(e.sim.Close)
	var mu sync.Mutex
	var seen []seenCall
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
		mu.Lock()
		seen = append(seen, seenCall{method: r.Method, path: r.URL.Path, sc: sc})
		mu.Unlock()
		e.sim.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)

	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	ac.BaseURL, ac.APIKey = srv.URL+"/v1", cnsim.DefaultAPIKey
	ac.HTTPClient = &http.Client{Transport: otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop))}
	var err error
	if e.api, err = apiclient.New(ac); err != nil {
		t.Fatal(err)
	}
	if e.nc, err = nats.Connect(e.ns.ClientURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.nc.Close)
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	wc.JetStream, wc.API = e.js, e.api
	wc.TracerProvider, wc.Propagator = tp, prop
	wc.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	e.subj = wc.Subjects
	e.w = e.startWorker(wc)
	return e, func() []seenCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenCall(nil), seen...)
	}
}

// TestTracePropagation follows a request's traceparent through the job's
// span and the API calls to the event headers: one trace from publisher to
// consumer of the events.
func TestTracePropagation(t *testing.T) {
	t.Parallel()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	prop := propagation.TraceContext{}
	e, simCalls := newTracedEnv(t, tp, prop)

	tests := []struct {
		name      string
		requestID string // also how the case's events are found
		body      []byte
		header    string // the header key of the traceparent; none when empty
		parent    string
		apiCalls  bool
	}{
		{
			name: "continues the request's trace", requestID: "req-traced", body: mustJSON(t, request("req-traced")),
			header: "traceparent", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", apiCalls: true,
		},
		{
			name: "reads a traceparent written in another case", requestID: "req-upper", body: mustJSON(t, request("req-upper")),
			header: "Traceparent", parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", apiCalls: true,
		},
		{
			name: "starts a trace when the request has none", requestID: "req-untraced", body: mustJSON(t, request("req-untraced")),
			apiCalls: true,
		},
		{
			name: "puts the trace on a rejected message's event", body: []byte("not json"),
			header: "traceparent", parent: "00-11111111111111111111111111111111-2222222222222222-01",
		},
	}
	for _, tt := range tests {
		msg := nats.NewMsg(e.subj.Create())
		msg.Data = tt.body
		if tt.requestID != "" {
			msg.Header.Set(jetstream.MsgIDHeader, tt.requestID)
		}
		if tt.header != "" {
			msg.Header.Set(tt.header, tt.parent)
		}
		if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	evs := e.waitEvents(30*time.Second, "every request's last event", func(evs []storedEvent) bool {
		done := 0
		for _, se := range evs {
			if se.ev.Kind.Terminal() || se.ev.Kind == jobs.KindRejected {
				done++
			}
		}
		return done == len(tests)
	})
	// A job's span ends after its last event is out.
	spans := waitSpans(t, sr, len(tests))
	calls := simCalls()

	traceParent := func(h nats.Header) trace.SpanContext {
		return trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": h.Get("traceparent")}))
	}
	clientSpans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanKind() == trace.SpanKindClient {
			clientSpans[s.SpanContext().SpanID()] = s
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var remote trace.SpanContext
			if tt.parent != "" {
				remote = trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": tt.parent}))
				if !remote.IsValid() {
					t.Fatalf("test traceparent %q does not parse", tt.parent)
				}
			}
			var job sdktrace.ReadOnlySpan
			for _, s := range spans {
				if s.SpanKind() != trace.SpanKindConsumer {
					continue
				}
				if (remote.IsValid() && s.SpanContext().TraceID() == remote.TraceID()) ||
					(!remote.IsValid() && tt.requestID != "" && hasAttr(s, "provisioner.request_id", tt.requestID)) {
					if job != nil {
						t.Fatalf("two job spans: %v and %v", job.SpanContext(), s.SpanContext())
					}
					job = s
				}
			}
			if job == nil {
				t.Fatal("no job span")
			}
			traceID := job.SpanContext().TraceID()
			if remote.IsValid() {
				if p := job.Parent(); !p.IsRemote() || p.SpanID() != remote.SpanID() || p.TraceID() != remote.TraceID() {
					t.Errorf("job span's parent = %v, want the remote span %v", p, remote)
				}
			} else if job.Parent().IsValid() {
				t.Errorf("job span without a traceparent has parent %v, want none", job.Parent())
			}
			if tt.requestID != "" && !hasAttr(job, "provisioner.request_id", tt.requestID) {
				t.Errorf("job span attributes %v lack the request_id", job.Attributes())
			}

			// API calls: client spans under the job span, and the simulator
			// saw the context of exactly those spans.
			creates, gets := 0, 0
			for _, c := range calls {
				if c.sc.TraceID() != traceID {
					continue
				}
				cs, ok := clientSpans[c.sc.SpanID()]
				if !ok {
					t.Errorf("%s %s carried span %s, not a recorded client span", c.method, c.path, c.sc.SpanID())
					continue
				}
				if cs.Parent().SpanID() != job.SpanContext().SpanID() {
					t.Errorf("client span of %s %s has parent %s, want the job span %s", c.method, c.path, cs.Parent().SpanID(), job.SpanContext().SpanID())
				}
				switch {
				case c.method == http.MethodPost && c.path == "/v1/instances":
					creates++
				case c.method == http.MethodGet:
					gets++
				}
			}
			if tt.apiCalls && (creates != 1 || gets == 0) {
				t.Errorf("simulator saw %d creates and %d gets in trace %s, want 1 and at least 1", creates, gets, traceID)
			}
			if !tt.apiCalls && creates+gets != 0 {
				t.Errorf("simulator saw %d calls in trace %s, want none", creates+gets, traceID)
			}

			// Every event of the request carries the job span's context.
			n := 0
			for _, se := range evs {
				if tt.requestID != "" && se.ev.RequestID != tt.requestID || tt.requestID == "" && se.ev.Kind != jobs.KindRejected {
					continue
				}
				n++
				got := traceParent(se.header)
				if got.TraceID() != traceID || got.SpanID() != job.SpanContext().SpanID() {
					t.Errorf("%s event traceparent %q, want trace %s span %s", se.ev.Kind, se.header.Get("traceparent"), traceID, job.SpanContext().SpanID())
				}
			}
			if n == 0 {
				t.Error("no event")
			}
		})
	}

	// No API call went out without a trace context.
	for _, c := range calls {
		if !c.sc.IsValid() {
			t.Errorf("%s %s carried no traceparent", c.method, c.path)
		}
	}
}

// waitSpans waits until n job spans have ended and returns every ended span.
func waitSpans(t *testing.T, sr *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := sr.Ended()
		jobs := 0
		for _, s := range spans {
			if s.SpanKind() == trace.SpanKindConsumer {
				jobs++
			}
		}
		if jobs >= n {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d job spans ended, want %d", jobs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasAttr(s sdktrace.ReadOnlySpan, key, value string) bool {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) && kv.Value.AsString() == value {
			return true
		}
	}
	return false
}

package cnsim_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

func allEndpoints(rate float64) map[cnsim.Endpoint]float64 {
	m := map[cnsim.Endpoint]float64{}
	for _, e := range cnsim.Endpoints() {
		m[e] = rate
	}
	return m
}

func TestErrorRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		faults     cnsim.Faults
		status     int
		body       string
		retryAfter string
	}{
		{
			name:   "default status",
			faults: cnsim.Faults{ErrorRate: allEndpoints(1)},
			status: 503,
			body:   `{"error":{"code":"SERVICE_UNAVAILABLE","message":"Service temporarily unavailable"}}`,
		},
		{
			name:       "503 with retry after rounded up",
			faults:     cnsim.Faults{ErrorRate: allEndpoints(1), ErrorStatus: 503, RetryAfter: 1500 * time.Millisecond},
			status:     503,
			body:       `{"error":{"code":"SERVICE_UNAVAILABLE","message":"Service temporarily unavailable"}}`,
			retryAfter: "2",
		},
		{
			name:       "500",
			faults:     cnsim.Faults{ErrorRate: allEndpoints(1), ErrorStatus: 500, RetryAfter: time.Second},
			status:     500,
			body:       `{"error":{"code":"INTERNAL_ERROR","message":"Internal server error"}}`,
			retryAfter: "1",
		},
		{
			name:   "429",
			faults: cnsim.Faults{ErrorRate: allEndpoints(1), ErrorStatus: 429, RetryAfter: time.Millisecond},
			status: 429, body: `{"error":{"code":"RATE_LIMITED","message":"Too many requests"}}`,
			retryAfter: "1",
		},
		{
			name:   "502",
			faults: cnsim.Faults{ErrorRate: allEndpoints(1), ErrorStatus: 502},
			status: 502, body: `{"error":{"code":"BAD_GATEWAY","message":"Bad gateway"}}`,
		},
		{
			name:   "504",
			faults: cnsim.Faults{ErrorRate: allEndpoints(1), ErrorStatus: 504},
			status: 504, body: `{"error":{"code":"GATEWAY_TIMEOUT","message":"Gateway timeout"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, cnsim.Config{Instant: true})
			in := create(t, s, "kept", "us-east-1")
			s.SetFaults(tt.faults)
			calls := []struct{ method, path, body string }{
				{"POST", "/instances", createBody("web", "us-east-1")},
				{"GET", "/instances/" + in.ID, ""},
				{"GET", "/instances", ""},
				{"DELETE", "/instances/" + in.ID, ""},
				{"GET", "/me", ""},
			}
			for range 5 {
				for _, c := range calls {
					r := do(t, s, c.method, c.path, c.body)
					wantError(t, r, tt.status, tt.body)
					if got := r.header.Get("Retry-After"); got != tt.retryAfter {
						t.Errorf("%s %s: Retry-After %q, want %q", c.method, c.path, got, tt.retryAfter)
					}
				}
			}
			if s.Creates() != 1 || s.Deletes() != 0 {
				t.Errorf("Creates %d, Deletes %d; want 1, 0", s.Creates(), s.Deletes())
			}
			for _, e := range cnsim.Endpoints() {
				if got := s.Calls(e); got < 5 {
					t.Errorf("Calls(%s) = %d, want at least 5", e, got)
				}
			}
		})
	}
}

func TestErrorRatePerEndpoint(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{Faults: cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{cnsim.EndpointGet: 1, cnsim.EndpointList: 0}}})
	in := create(t, s, "web", "us-east-1")
	if r := do(t, s, "GET", "/instances/"+in.ID, ""); r.status != 503 {
		t.Errorf("get: %d", r.status)
	}
	if r := do(t, s, "GET", "/instances", ""); r.status != 200 {
		t.Errorf("list: %d", r.status)
	}
	// A wrong key is told so, even when every call would fail.
	wantError(t, do(t, s, "GET", "/instances/"+in.ID, "", "Authorization", "Bearer nope"), 401, unauthorized)
}

// TestSeed checks that a seed makes ids and fault draws repeatable.
func TestSeed(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) (pattern string, id string) {
		s := start(t, cnsim.Config{Seed: seed, Faults: cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{cnsim.EndpointMe: 0.3}}})
		id = create(t, s, "web", "us-east-1").ID
		var b strings.Builder
		for range 200 {
			if do(t, s, "GET", "/me", "").status == 200 {
				b.WriteByte('.')
			} else {
				b.WriteByte('x')
			}
		}
		return b.String(), id
	}
	p1, id1 := run(42)
	p2, id2 := run(42)
	p3, id3 := run(7)
	if p1 != p2 || id1 != id2 {
		t.Errorf("same seed, different runs:\n%s %s\n%s %s", p1, id1, p2, id2)
	}
	if p1 == p3 || id1 == id3 {
		t.Errorf("different seeds, same run: %s %s", p1, id1)
	}
	if n := strings.Count(p1, "x"); n < 30 || n > 90 {
		t.Errorf("%d errors in 200 calls at rate 0.3", n)
	}
}

func TestCreateThen500(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{Faults: cnsim.Faults{CreateThen500: 1, RetryAfter: 3 * time.Second}})
	key := []string{"Idempotency-Key", "req-500"}
	r := do(t, s, "POST", "/instances", createBody("web", "eu-west-1"), key...)
	wantError(t, r, 500, `{"error":{"code":"INTERNAL_ERROR","message":"Internal server error"}}`)
	if got := r.header.Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After = %q, want 3", got)
	}
	ins := s.Instances()
	if s.Creates() != 1 || len(ins) != 1 || ins[0].Name != "web" {
		t.Fatalf("Creates %d, Instances %+v; want the one instance", s.Creates(), ins)
	}

	// The retry with the same key gets the instance the failed call made.
	s.SetFaults(cnsim.Faults{})
	r = do(t, s, "POST", "/instances", createBody("web", "eu-west-1"), key...)
	if got := decode[apiclient.Instance](t, r); r.status != 201 || got.ID != ins[0].ID || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d %s", r.status, r.body)
	}
	if s.Creates() != 1 {
		t.Errorf("Creates = %d after retry", s.Creates())
	}
}

func TestCreateThenDrop(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{Faults: cnsim.Faults{CreateThenDrop: 1}})
	// A fresh connection per call: net/http resends a request with an
	// Idempotency-Key when a reused connection drops, which would hide the
	// drop.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for _, key := range []string{"", "req-drop"} {
		_, err := send(c, s, "POST", "/instances", createBody("web", "eu-west-1"), "Idempotency-Key", key)
		if !errors.Is(err, io.EOF) {
			t.Errorf("key %q: error %v, want EOF", key, err)
		}
	}
	if s.Creates() != 2 || len(s.Instances()) != 2 || s.CreatesByName("web") != 2 {
		t.Errorf("Creates %d, Instances %d; want 2 created", s.Creates(), len(s.Instances()))
	}
}

func TestInstanceFates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults cnsim.Faults
		want   map[string]string // instance name to status after an hour
	}{
		{name: "no faults", want: map[string]string{"a": "running", "b": "running"}},
		{name: "stuck pending", faults: cnsim.Faults{StuckPending: 1}, want: map[string]string{"a": "pending", "b": "pending"}},
		{name: "end in error", faults: cnsim.Faults{EndInError: 1}, want: map[string]string{"a": "error", "b": "error"}},
		{
			name: "fate override",
			faults: cnsim.Faults{StuckPending: 1, Fate: func(req apiclient.CreateInstanceRequest) cnsim.Fate {
				switch req.Name {
				case "run":
					return cnsim.FateRunning
				case "fail":
					return cnsim.FateError
				case "stuck":
					return cnsim.FateStuckPending
				case "odd":
					return cnsim.Fate(42) // taken as FateDefault
				}
				return cnsim.FateDefault
			}},
			want: map[string]string{"run": "running", "fail": "error", "stuck": "pending", "other": "pending", "odd": "pending"},
		},
		{
			name:   "fate over end in error",
			faults: cnsim.Faults{EndInError: 1, Fate: func(apiclient.CreateInstanceRequest) cnsim.Fate { return cnsim.FateRunning }},
			want:   map[string]string{"a": "running"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock()
			s := start(t, cnsim.Config{Now: clock.Now, Faults: tt.faults})
			ids := map[string]string{}
			for name := range tt.want {
				in := create(t, s, name, "ap-south-1")
				if in.Status != "pending" {
					t.Errorf("%s: created %q, want pending", name, in.Status)
				}
				ids[name] = in.ID
			}
			clock.Advance(time.Hour)
			for name, status := range tt.want {
				in := decode[apiclient.Instance](t, do(t, s, "GET", "/instances/"+ids[name], ""))
				if in.Status != status || (in.IPv4 != "") != (status == "running") {
					t.Errorf("%s: %+v, want status %s with an ipv4 only when running", name, in, status)
				}
			}
		})
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{Faults: cnsim.Faults{Latency: map[cnsim.Endpoint]time.Duration{cnsim.EndpointMe: 50 * time.Millisecond}}})
	began := time.Now()
	if r := do(t, s, "GET", "/me", ""); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if d := time.Since(began); d < 50*time.Millisecond {
		t.Errorf("answered after %v, want at least 50ms", d)
	}
}

func TestLatencyEnds(t *testing.T) {
	t.Parallel()
	hour := cnsim.Faults{Latency: map[cnsim.Endpoint]time.Duration{cnsim.EndpointMe: time.Hour}}

	t.Run("client gives up", func(t *testing.T) {
		t.Parallel()
		s := start(t, cnsim.Config{Faults: hour})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/me", nil)
		_, err := s.Client().Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want deadline exceeded", err)
		}
	})

	t.Run("simulator closes", func(t *testing.T) {
		t.Parallel()
		s := start(t, cnsim.Config{Faults: hour})
		done := make(chan error, 1)
		go func() {
			r, err := send(s.Client(), s, "GET", "/me", "")
			if err == nil && r.status != 503 {
				err = errors.New(string(r.body))
			}
			done <- err
		}()
		for s.Calls(cnsim.EndpointMe) == 0 {
			time.Sleep(time.Millisecond)
		}
		s.Close()
		if err := <-done; err != nil {
			t.Logf("call in progress at Close: %v", err) // either 503 or a closed connection
		}
	})
}

func TestSetFaultsConcurrent(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{Instant: true})
	in := create(t, s, "web", "us-east-1")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				send(s.Client(), s, "GET", "/instances/"+in.ID, "")
				send(s.Client(), s, "POST", "/instances", createBody("other", "us-east-1"), "Idempotency-Key", "k")
				send(s.Client(), s, "GET", "/instances?status=running", "")
			}
		})
	}
	for i := range 200 {
		s.SetFaults(cnsim.Faults{
			ErrorRate:    map[cnsim.Endpoint]float64{cnsim.EndpointGet: float64(i%3) / 2},
			StuckPending: 0.5,
			Latency:      map[cnsim.Endpoint]time.Duration{cnsim.EndpointList: time.Duration(i%2) * time.Microsecond},
		})
		_ = s.Faults()
		s.SetAPIKey(cnsim.DefaultAPIKey)
		s.SetIgnoreIdempotencyKey(i%2 == 0)
	}
	close(stop)
	wg.Wait()
}

func TestFaultsCopied(t *testing.T) {
	t.Parallel()
	s := start(t, cnsim.Config{})
	rates := map[cnsim.Endpoint]float64{cnsim.EndpointMe: 1}
	s.SetFaults(cnsim.Faults{ErrorRate: rates})
	rates[cnsim.EndpointMe] = 0
	got := s.Faults()
	if got.ErrorRate[cnsim.EndpointMe] != 1 {
		t.Errorf("changing the caller's map changed the faults: %v", got.ErrorRate)
	}
	got.ErrorRate[cnsim.EndpointMe] = 0
	if r := do(t, s, "GET", "/me", ""); r.status != 503 {
		t.Errorf("changing Faults()'s map changed the faults: %d", r.status)
	}
}

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults cnsim.Faults
		want   string // in the error; empty for valid
	}{
		{name: "zero"},
		{name: "full", faults: cnsim.Faults{
			ErrorRate: allEndpoints(0.5), ErrorStatus: 500, RetryAfter: time.Second,
			Latency:       map[cnsim.Endpoint]time.Duration{cnsim.EndpointGet: time.Second},
			CreateThen500: 0.5, CreateThenDrop: 0.5, StuckPending: 0.25, EndInError: 0.75,
		}},
		{name: "unknown endpoint rate", faults: cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{"update": 0.1}}, want: "ErrorRate"},
		{name: "rate over 1", faults: cnsim.Faults{ErrorRate: map[cnsim.Endpoint]float64{"get": 1.5}}, want: "ErrorRate[get]"},
		{name: "nan rate", faults: cnsim.Faults{CreateThen500: math.NaN()}, want: "CreateThen500"},
		{name: "bad status", faults: cnsim.Faults{ErrorStatus: 404}, want: "ErrorStatus"},
		{name: "negative retry after", faults: cnsim.Faults{RetryAfter: -time.Second}, want: "RetryAfter"},
		{name: "unknown endpoint latency", faults: cnsim.Faults{Latency: map[cnsim.Endpoint]time.Duration{"x": 1}}, want: "Latency"},
		{name: "negative latency", faults: cnsim.Faults{Latency: map[cnsim.Endpoint]time.Duration{"me": -1}}, want: "Latency[me]"},
		{name: "negative rate", faults: cnsim.Faults{CreateThenDrop: -0.1}, want: "CreateThenDrop"},
		{name: "create outcomes over 1", faults: cnsim.Faults{CreateThen500: 0.6, CreateThenDrop: 0.6}, want: "CreateThen500 + CreateThenDrop"},
		{name: "fates over 1", faults: cnsim.Faults{StuckPending: 0.6, EndInError: 0.6}, want: "StuckPending + EndInError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.faults.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error starting %q", err, tt.want)
			}
			defer func() {
				if recover() == nil {
					t.Error("SetFaults did not panic")
				}
			}()
			cnsim.New(cnsim.Config{}).SetFaults(tt.faults)
		})
	}
}

func TestParseRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    map[cnsim.Endpoint]float64
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "blank", in: "  ", want: nil},
		{name: "one", in: "create=0.1", want: map[cnsim.Endpoint]float64{"create": 0.1}},
		{name: "all", in: "create=0.1, get=0.05,list=1,delete=0,me=0.5", want: map[cnsim.Endpoint]float64{"create": 0.1, "get": 0.05, "list": 1, "delete": 0, "me": 0.5}},
		{name: "unknown endpoint", in: "update=0.1", wantErr: `unknown endpoint "update"`},
		{name: "no equals", in: "create", wantErr: "not endpoint=value"},
		{name: "not a number", in: "get=lots", wantErr: "get: rate"},
		{name: "over 1", in: "get=1.1", wantErr: "get: rate"},
		{name: "negative", in: "get=-0.1", wantErr: "get: rate"},
		{name: "nan", in: "get=NaN", wantErr: "get: rate"},
		{name: "twice", in: "get=0.1,get=0.2", wantErr: "given twice"},
		{name: "trailing comma", in: "get=0.1,", wantErr: "not endpoint=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cnsim.ParseRates(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !mapsEqual(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseLatencies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    map[cnsim.Endpoint]time.Duration
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "two", in: "create=100ms,get=50ms", want: map[cnsim.Endpoint]time.Duration{"create": 100 * time.Millisecond, "get": 50 * time.Millisecond}},
		{name: "zero", in: "me=0s", want: map[cnsim.Endpoint]time.Duration{"me": 0}},
		{name: "no unit", in: "get=50", wantErr: "get: latency"},
		{name: "negative", in: "get=-1s", wantErr: "get: latency"},
		{name: "unknown endpoint", in: "put=1s", wantErr: "unknown endpoint"},
		{name: "twice", in: "get=1s,get=2s", wantErr: "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cnsim.ParseLatencies(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !mapsEqual(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestFateString(t *testing.T) {
	t.Parallel()
	for f, want := range map[cnsim.Fate]string{
		cnsim.FateDefault: "default", cnsim.FateRunning: "running", cnsim.FateStuckPending: "stuck-pending",
		cnsim.FateError: "error", cnsim.Fate(9): "Fate(9)",
	} {
		if got := f.String(); got != want {
			t.Errorf("%d: %q, want %q", int(f), got, want)
		}
	}
}

package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     apiclient.Config
		wantErr string // substring; empty for success
	}{
		{name: "defaults", cfg: apiclient.Config{APIKey: testKey}},
		{name: "missing key", cfg: apiclient.Config{}, wantErr: "APIKey is required"},
		{name: "key with space", cfg: apiclient.Config{APIKey: testKey + " x"}, wantErr: "APIKey"},
		{name: "unparsable url", cfg: apiclient.Config{APIKey: testKey, BaseURL: "http://[::1"}, wantErr: "BaseURL"},
		{name: "bad scheme", cfg: apiclient.Config{APIKey: testKey, BaseURL: "ftp://api.example.com/v1"}, wantErr: "BaseURL"},
		{name: "no host", cfg: apiclient.Config{APIKey: testKey, BaseURL: "https:///v1"}, wantErr: "BaseURL"},
		{name: "credentials in url", cfg: apiclient.Config{APIKey: testKey, BaseURL: "https://u:" + testKey + "@api.example.com/v1"}, wantErr: "BaseURL"},
		{name: "negative timeout", cfg: apiclient.Config{APIKey: testKey, Timeout: -time.Second}, wantErr: "Timeout"},
		{name: "negative retry initial", cfg: apiclient.Config{APIKey: testKey, RetryInitial: -time.Second}, wantErr: "RetryInitial"},
		{name: "max interval below initial", cfg: apiclient.Config{APIKey: testKey, RetryInitial: time.Minute, RetryMaxInterval: time.Second}, wantErr: "RetryMaxInterval"},
		{name: "negative max conns", cfg: apiclient.Config{APIKey: testKey, MaxConnsPerHost: -1}, wantErr: "MaxConnsPerHost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := apiclient.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				t.Fatalf("New: no error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error %q does not name %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("New error %q contains the API key", err)
			}
		})
	}
}

func TestCreateInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		idemKey string
		answer  any
	}{
		{name: "bare instance", idemKey: "req-7f3a9c", answer: testInstance("inst_1")},
		{name: "wrapped instance", idemKey: "req-7f3a9c", answer: map[string]any{"instance": testInstance("inst_1")}},
		{name: "no idempotency key", answer: testInstance("inst_1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got struct {
				method, path, auth, idem, ctype, ua string
				hasIdem                             bool
				body                                map[string]any
			}
			c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				got.method, got.path = r.Method, r.URL.Path
				got.auth, got.ctype, got.ua = r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.Header.Get("User-Agent")
				_, got.hasIdem = r.Header["Idempotency-Key"]
				got.idem = r.Header.Get("Idempotency-Key")
				if err := json.NewDecoder(r.Body).Decode(&got.body); err != nil {
					t.Errorf("decode request body: %v", err)
				}
				writeJSON(w, http.StatusCreated, tt.answer)
			}, nil)

			req := apiclient.CreateInstanceRequest{
				Name: "worker-node-02", Plan: "standard-8", Region: "eu-west-1",
				Image: "ubuntu-22.04", SSHKeys: []string{"ssh_key_a1b2c3"},
			}
			inst, err := c.CreateInstance(context.Background(), req, tt.idemKey)
			if err != nil {
				t.Fatalf("CreateInstance: %v", err)
			}
			if inst.ID != "inst_1" || inst.Name != "worker-node-02" || inst.Status != "pending" || inst.CreatedAt == nil {
				t.Errorf("instance = %+v", inst)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
			if got.method != http.MethodPost || got.path != "/v1/instances" {
				t.Errorf("request %s %s, want POST /v1/instances", got.method, got.path)
			}
			if got.auth != "Bearer "+testKey {
				t.Errorf("Authorization = %q", got.auth)
			}
			if got.ctype != "application/json" || got.ua != "cloudnexus-provisioner" {
				t.Errorf("Content-Type = %q, User-Agent = %q", got.ctype, got.ua)
			}
			if got.idem != tt.idemKey || got.hasIdem != (tt.idemKey != "") {
				t.Errorf("Idempotency-Key = %q (present %v), want %q", got.idem, got.hasIdem, tt.idemKey)
			}
			want := map[string]any{
				"name": "worker-node-02", "plan": "standard-8", "region": "eu-west-1",
				"image": "ubuntu-22.04", "ssh_keys": []any{"ssh_key_a1b2c3"},
			}
			if b1, b2 := mustJSON(t, got.body), mustJSON(t, want); b1 != b2 {
				t.Errorf("request body = %s, want %s", b1, b2)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateInstanceMakesOneAttempt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		handler       http.HandlerFunc
		wantRetryable bool
		wantStatus    int // 0 when the error is not an *Error
	}{
		{name: "500", handler: sequence(nil, 500, 201), wantRetryable: true, wantStatus: 500},
		{name: "503", handler: sequence(nil, 503, 201), wantRetryable: true, wantStatus: 503},
		{name: "400", handler: sequence(nil, 400, 201), wantStatus: 400},
		{name: "409", handler: sequence(nil, 409, 201), wantStatus: 409},
		{name: "201 with html body", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "<html>ok</html>")
		}, wantRetryable: true},
		{name: "201 without id", handler: sequence(map[string]any{"name": "x"}, 201), wantRetryable: true},
		{name: "connection dropped", handler: hangUp, wantRetryable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, calls := newTestClient(t, tt.handler, nil)
			inst, err := c.CreateInstance(context.Background(), apiclient.CreateInstanceRequest{Name: "n"}, "req-1")
			if err == nil || inst != nil {
				t.Fatalf("CreateInstance = %+v, %v; want an error", inst, err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("server saw %d requests, want exactly 1", n)
			}
			if got := apiclient.Retryable(err); got != tt.wantRetryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, got, tt.wantRetryable)
			}
			var apiErr *apiclient.Error
			if errors.As(err, &apiErr) != (tt.wantStatus != 0) || (apiErr != nil && apiErr.StatusCode != tt.wantStatus) {
				t.Errorf("error %v: *Error %+v, want status %d", err, apiErr, tt.wantStatus)
			}
		})
	}
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.Close()
}

func TestErrorDecoding(t *testing.T) {
	t.Parallel()
	longHTML := "<html><body>" + strings.Repeat("overloaded ", 100) + "</body></html>"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        apiclient.Error
	}{
		{
			name:   "documented envelope",
			status: 400,
			body:   `{"error":{"code":"VALIDATION_ERROR","message":"Invalid region specified","details":[{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]}}`,
			want: apiclient.Error{
				StatusCode: 400, Code: "VALIDATION_ERROR", Message: "Invalid region specified",
				Details: []byte(`[{"field":"region","reason":"Must be one of: us-east-1, eu-west-1, ap-south-1"}]`),
			},
		},
		{
			name:   "envelope without details",
			status: 403,
			body:   `{"error":{"code":"FORBIDDEN","message":"Insufficient permissions","details":null}}`,
			want:   apiclient.Error{StatusCode: 403, Code: "FORBIDDEN", Message: "Insufficient permissions"},
		},
		{
			name:   "plain text",
			status: 404,
			body:   "404 page not found\n",
			want:   apiclient.Error{StatusCode: 404, Message: "404 page not found"},
		},
		{
			name:   "error as a string",
			status: 422,
			body:   `{"error":"bad things"}`,
			want:   apiclient.Error{StatusCode: 422, Message: `{"error":"bad things"}`},
		},
		{
			name:   "long html is cut at 200 bytes",
			status: 418,
			body:   longHTML,
			want:   apiclient.Error{StatusCode: 418, Message: strings.TrimSpace(longHTML[:200])},
		},
		{
			name:   "control characters",
			status: 400,
			body:   "line one\nline\ttwo\x00",
			want:   apiclient.Error{StatusCode: 400, Message: "line one line two"},
		},
		{
			name:   "empty body",
			status: 400,
			want:   apiclient.Error{StatusCode: 400},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}, nil)
			_, err := c.GetInstance(context.Background(), "inst_1")
			var apiErr *apiclient.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("GetInstance error %v (%T) is not an *Error", err, err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("server saw %d requests, want 1 (4xx is not retried)", n)
			}
			tt.want.Method, tt.want.Path = http.MethodGet, "/instances/inst_1"
			if apiErr.StatusCode != tt.want.StatusCode || apiErr.Code != tt.want.Code || apiErr.Message != tt.want.Message ||
				string(apiErr.Details) != string(tt.want.Details) || apiErr.Method != tt.want.Method || apiErr.Path != tt.want.Path {
				t.Errorf("error = %#v\nwant    %#v", *apiErr, tt.want)
			}
			if apiclient.Retryable(err) {
				t.Errorf("Retryable(%v) = true for a %d", err, tt.status)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusUnauthorized, "UNAUTHORIZED", "Invalid API key")
	}, nil)
	ctx := context.Background()
	calls0 := calls.Load()
	checks := []struct {
		name string
		call func() error
	}{
		{name: "me", call: func() error { _, err := c.Me(ctx); return err }},
		{name: "get", call: func() error { _, err := c.GetInstance(ctx, "inst_1"); return err }},
		{name: "list", call: func() error { _, err := c.ListInstances(ctx, apiclient.ListOptions{}); return err }},
		{name: "delete", call: func() error { return c.DeleteInstance(ctx, "inst_1") }},
		{name: "create", call: func() error {
			_, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "n"}, "k")
			return err
		}},
	}
	for _, tt := range checks {
		err := tt.call()
		if !errors.Is(err, apiclient.ErrUnauthorized) {
			t.Errorf("%s: error %v does not match ErrUnauthorized", tt.name, err)
		}
		if apiclient.Retryable(err) {
			t.Errorf("%s: Retryable(%v) = true", tt.name, err)
		}
		if n := calls.Load() - calls0; n != 1 {
			t.Errorf("%s: server saw %d requests, want 1", tt.name, n)
		}
		calls0 = calls.Load()
	}
}

func TestGetInstanceRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		statuses  []int
		wantCalls int64
		wantErr   int // status of the *Error returned, 0 for success
	}{
		{name: "503 then 200", statuses: []int{503, 200}, wantCalls: 2},
		{name: "500 502 504 then 200", statuses: []int{500, 502, 504, 200}, wantCalls: 4},
		{name: "429 then 200", statuses: []int{429, 200}, wantCalls: 2},
		{name: "400 is final", statuses: []int{400, 200}, wantCalls: 1, wantErr: 400},
		{name: "403 is final", statuses: []int{403, 200}, wantCalls: 1, wantErr: 403},
		{name: "404 is returned", statuses: []int{404, 200}, wantCalls: 1, wantErr: 404},
		{name: "503 then 404", statuses: []int{503, 404}, wantCalls: 2, wantErr: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, calls := newTestClient(t, sequence(testInstance("inst_1"), tt.statuses...), nil)
			inst, err := c.GetInstance(context.Background(), "inst_1")
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", n, tt.wantCalls)
			}
			if tt.wantErr == 0 {
				if err != nil || inst == nil || inst.ID != "inst_1" {
					t.Fatalf("GetInstance = %+v, %v", inst, err)
				}
				return
			}
			var apiErr *apiclient.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tt.wantErr {
				t.Fatalf("GetInstance error = %v, want an *Error with status %d", err, tt.wantErr)
			}
		})
	}
}

func TestGetInstanceEscapesID(t *testing.T) {
	t.Parallel()
	var gotPath string
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.EscapedPath()
		writeJSON(w, 200, testInstance("a/b c"))
	}, nil)
	if _, err := c.GetInstance(context.Background(), "a/b c"); err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if gotPath != "/v1/instances/a%2Fb%20c" {
		t.Errorf("path = %q", gotPath)
	}
	if _, err := c.GetInstance(context.Background(), ""); err == nil {
		t.Error("GetInstance with an empty id: no error")
	}
}

func TestDeleteInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		statuses  []int
		wantCalls int64
		wantErr   bool
	}{
		{name: "204", statuses: []int{204}, wantCalls: 1},
		{name: "200", statuses: []int{200}, wantCalls: 1},
		{name: "404 is already gone", statuses: []int{404}, wantCalls: 1},
		{name: "503 then 204", statuses: []int{503, 204}, wantCalls: 2},
		{name: "503 then 404", statuses: []int{503, 404}, wantCalls: 2},
		{name: "403", statuses: []int{403}, wantCalls: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var method string
			seq := sequence(map[string]any{}, tt.statuses...)
			c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				method = r.Method
				seq(w, r)
			}, nil)
			err := c.DeleteInstance(context.Background(), "inst_1")
			if (err != nil) != tt.wantErr {
				t.Errorf("DeleteInstance error = %v, want error %v", err, tt.wantErr)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("server saw %d requests, want %d", n, tt.wantCalls)
			}
			if method != http.MethodDelete {
				t.Errorf("method = %s", method)
			}
		})
	}
}

func TestListInstances(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      apiclient.ListOptions
		wantQuery string
	}{
		{name: "no options", wantQuery: ""},
		{name: "all options", opts: apiclient.ListOptions{Status: "running", Region: "eu-west-1", PageSize: 100, Page: 3},
			wantQuery: "page=3&page_size=100&region=eu-west-1&status=running"},
		{name: "region only", opts: apiclient.ListOptions{Region: "us-east-1"}, wantQuery: "region=us-east-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var gotQuery string
			c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				gotQuery = r.URL.Query().Encode()
				writeJSON(w, 200, map[string]any{
					"instances": []any{testInstance("inst_1")},
					"meta":      map[string]any{"total": 42, "page": 1, "page_size": 25},
				})
			}, nil)
			list, err := c.ListInstances(context.Background(), tt.opts)
			if err != nil {
				t.Fatalf("ListInstances: %v", err)
			}
			if gotQuery != tt.wantQuery {
				t.Errorf("query = %q, want %q", gotQuery, tt.wantQuery)
			}
			if len(list.Instances) != 1 || list.Meta.Total != 42 || list.Meta.PageSize != 25 {
				t.Errorf("list = %+v", list)
			}
		})
	}
}

func TestListInstancesRejectsOtherBodies(t *testing.T) {
	t.Parallel()
	c, calls := newTestClient(t, sequence(map[string]any{"items": []any{}}, 200), func(cfg *apiclient.Config) {
		cfg.RetryMaxElapsed = 50 * time.Millisecond
	})
	_, err := c.ListInstances(context.Background(), apiclient.ListOptions{})
	if err == nil || !apiclient.Retryable(err) {
		t.Fatalf("ListInstances error = %v, want a Retryable error", err)
	}
	if calls.Load() < 2 {
		t.Errorf("server saw %d requests, want the undecodable page retried", calls.Load())
	}
}

func TestMe(t *testing.T) {
	t.Parallel()
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/me" || r.Header.Get("Authorization") != "Bearer "+testKey {
			writeAPIError(w, 401, "UNAUTHORIZED", "no")
			return
		}
		writeJSON(w, 200, map[string]any{"id": "acct_1"})
	}, nil)
	me, err := c.Me(context.Background())
	if err != nil {
		t.Fatalf("Me: %v", err)
	}
	if strings.TrimSpace(string(me)) != `{"id":"acct_1"}` {
		t.Errorf("Me = %s", me)
	}
}

func TestTimeoutPerAttempt(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	slowFirst := func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			stall(w, r)
			return
		}
		writeJSON(w, 200, testInstance("inst_1"))
	}
	c, calls := newTestClient(t, slowFirst, func(cfg *apiclient.Config) { cfg.Timeout = 100 * time.Millisecond })

	start := time.Now()
	_, err := c.CreateInstance(context.Background(), apiclient.CreateInstanceRequest{Name: "n"}, "k")
	if err == nil {
		t.Fatal("CreateInstance on a slow server: no error")
	}
	if !apiclient.Retryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v: Retryable %v, is DeadlineExceeded %v; want both", err, apiclient.Retryable(err), errors.Is(err, context.DeadlineExceeded))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("CreateInstance took %v with a 100ms timeout", d)
	}

	n.Store(0)
	inst, err := c.GetInstance(context.Background(), "inst_1")
	if err != nil || inst.ID != "inst_1" {
		t.Fatalf("GetInstance after one slow attempt = %+v, %v", inst, err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("server saw %d requests, want 3", got)
	}
}

func TestCallerCancellationIsNotRetryable(t *testing.T) {
	t.Parallel()
	c, calls := newTestClient(t, stall, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetInstance(ctx, "inst_1")
	if err == nil || apiclient.Retryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetInstance with an expired ctx: error %v, Retryable %v", err, apiclient.Retryable(err))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestNetworkErrorRetried(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			hangUp(w, r)
			return
		}
		writeJSON(w, 200, testInstance("inst_1"))
	}, nil)
	if _, err := c.GetInstance(context.Background(), "inst_1"); err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if got := calls.Load(); got < 3 {
		t.Errorf("server saw %d requests, want at least 3", got)
	}
}

func TestCountCalls(t *testing.T) {
	t.Parallel()
	c, _ := newTestClient(t, sequence(testInstance("inst_1"), 503, 500, 200), nil)
	var outer, inner atomic.Int64
	ctx := apiclient.CountCalls(context.Background(), &outer)
	if _, err := c.GetInstance(apiclient.CountCalls(ctx, &inner), "inst_1"); err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if _, err := c.GetInstance(ctx, "inst_1"); err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if inner.Load() != 3 || outer.Load() != 4 {
		t.Errorf("inner counted %d, outer %d; want 3 and 4", inner.Load(), outer.Load())
	}
}

func TestObserver(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []apiclient.CallInfo
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNotFound)
		case r.URL.Path == "/v1/me":
			writeJSON(w, 200, map[string]any{})
		default:
			writeAPIError(w, 400, "VALIDATION_ERROR", "no")
		}
	}, func(cfg *apiclient.Config) {
		cfg.Observer = func(ci apiclient.CallInfo) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ci)
		}
	})
	ctx := context.Background()
	_, _ = c.Me(ctx)
	_ = c.DeleteInstance(ctx, "inst_1")
	_, _ = c.CreateInstance(ctx, apiclient.CreateInstanceRequest{}, "")
	_, _ = c.GetInstance(ctx, "inst_1")
	_, _ = c.ListInstances(ctx, apiclient.ListOptions{})
	want := []struct {
		endpoint string
		status   int
		err      bool
	}{{"me", 200, false}, {"delete", 404, true}, {"create", 400, true}, {"get", 400, true}, {"list", 400, true}}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("observer saw %d calls, want %d: %+v", len(seen), len(want), seen)
	}
	for i, w := range want {
		if s := seen[i]; s.Endpoint != w.endpoint || s.StatusCode != w.status || (s.Err != nil) != w.err || s.Duration <= 0 {
			t.Errorf("call %d = %+v, want %+v", i, s, w)
		}
	}
}

func TestAPIKeyNeverInErrors(t *testing.T) {
	t.Parallel()
	// A hostile or buggy server echoes the request's Authorization header.
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{name: "echo in envelope", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 400, map[string]any{"error": map[string]any{
				"code": "BAD", "message": "bad header " + r.Header.Get("Authorization"),
				"details": []any{map[string]any{"header": r.Header.Get("Authorization")}},
			}})
		}},
		{name: "echo in plain body", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(403)
			_, _ = io.WriteString(w, "denied: "+r.Header.Get("Authorization"))
		}},
		{name: "network error", handler: hangUp},
		{name: "timeout", handler: stall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newTestClient(t, tt.handler, func(cfg *apiclient.Config) {
				cfg.Timeout = 50 * time.Millisecond
				cfg.RetryMaxElapsed = 100 * time.Millisecond
			})
			ctx := context.Background()
			_, err1 := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "n"}, "k")
			_, err2 := c.GetInstance(ctx, "inst_1")
			for _, err := range []error{err1, err2} {
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), testKey) {
					t.Errorf("error contains the API key: %v", err)
				}
				if apiErr, ok := errors.AsType[*apiclient.Error](err); ok && strings.Contains(string(apiErr.Details), testKey) {
					t.Errorf("error details contain the API key: %s", apiErr.Details)
				}
			}
		})
	}
}

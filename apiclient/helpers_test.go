package apiclient_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
)

// testKey is distinctive so a test can tell it never leaks into an error.
const testKey = "cn_test_Zq8xK3vLp0SeCrEt7"

// newTestClient starts handler behind an httptest server and returns a
// Client for it with short retry waits, and the number of requests the
// server received. Both are closed when the test ends.
func newTestClient(t *testing.T, handler http.HandlerFunc, modify func(*apiclient.Config)) (*apiclient.Client, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := apiclient.Config{
		BaseURL:          srv.URL + "/v1",
		APIKey:           testKey,
		Timeout:          2 * time.Second,
		RetryInitial:     5 * time.Millisecond,
		RetryMaxInterval: 20 * time.Millisecond,
		RetryMaxElapsed:  5 * time.Second,
	}
	if modify != nil {
		modify(&cfg)
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c, &calls
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message}})
}

// sequence answers the n-th request with statuses[n] (the last one repeats),
// a 2xx with body and any other status with an error envelope.
func sequence(body any, statuses ...int) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := statuses[min(i, len(statuses)-1)]
		if status >= 200 && status < 300 {
			writeJSON(w, status, body)
			return
		}
		writeAPIError(w, status, "E", http.StatusText(status))
	}
}

func testInstance(id string) map[string]any {
	return map[string]any{
		"id": id, "name": "worker-node-02", "status": "pending", "region": "eu-west-1",
		"plan": "standard-8", "created_at": "2025-03-14T08:22:00Z",
	}
}

// stall never answers: it waits until the client gives up on the request
// (or 10s pass). It reads the body first, because the server notices a
// closed connection only once the body is consumed.
func stall(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

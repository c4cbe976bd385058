package apiclient_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cloudnexus/provisioner/apiclient"
)

// TestCreateNotReplayedOnDroppedConnection: when a reused connection drops
// before the create is answered, the transport must not send the create
// again by itself (it would for a request with an Idempotency-Key whose body
// it can rewind): the caller has to hear that the outcome is unknown.
func TestCreateNotReplayedOnDroppedConnection(t *testing.T) {
	t.Parallel()
	var posts atomic.Int64
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusOK, map[string]any{"id": "acct_1"})
			return
		}
		posts.Add(1)
		// The instance is made, then the connection is cut without an answer.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	}, nil)
	ctx := context.Background()
	// Open a keep-alive connection first, so the create goes out on a reused one.
	if _, err := c.Me(ctx); err != nil {
		t.Fatalf("Me: %v", err)
	}
	_, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "n", Plan: "p", Region: "r", Image: "i"}, "req-1")
	if err == nil {
		t.Fatal("create on a dropped connection succeeded")
	}
	if !apiclient.Retryable(err) {
		t.Errorf("error %v is not retryable (outcome unknown)", err)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("server received %d creates, want 1 (the transport re-sent it)", n)
	}
}

package apiclient_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudnexus/provisioner/apiclient"
	"github.com/cloudnexus/provisioner/apiclient/cnsim"
)

// TestUnencryptedHTTP2 checks which protocol the default transport speaks to
// an http:// BaseURL: HTTP/1.1 unless UnencryptedHTTP2 is set, then HTTP/2,
// for every one of many concurrent calls.
func TestUnencryptedHTTP2(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		h2c       bool
		wantMajor int
	}{
		{"default is HTTP/1.1", false, 1},
		{"UnencryptedHTTP2 speaks h2c", true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				protos = map[int]int{}
			)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos[r.ProtoMajor]++
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // keep calls overlapping
				writeJSON(w, http.StatusOK, map[string]any{"id": "acct_1"})
			}))
			srv.Config.Protocols = cnsim.Protocols()
			srv.Start()
			t.Cleanup(srv.Close)
			c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/v1", APIKey: testKey, UnencryptedHTTP2: tt.h2c})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			const calls = 20
			var wg sync.WaitGroup
			for range calls {
				wg.Go(func() {
					if _, err := c.Me(context.Background()); err != nil {
						t.Errorf("Me: %v", err)
					}
				})
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if protos[tt.wantMajor] != calls {
				t.Errorf("requests by HTTP major version: %v, want all %d on %d", protos, calls, tt.wantMajor)
			}
		})
	}
}

// TestUnencryptedHTTP2NotForHTTPS: over https the option changes nothing;
// HTTP/2 is negotiated with TLS, and a server without it still gets HTTP/1.1.
func TestUnencryptedHTTP2NotForHTTPS(t *testing.T) {
	t.Parallel()
	tr := apiclient.NewTransport(apiclient.Config{BaseURL: "https://api.example.test/v1", UnencryptedHTTP2: true})
	if tr.Protocols != nil && !tr.Protocols.HTTP1() {
		t.Errorf("https transport protocols %v: HTTP/1.1 must stay allowed", tr.Protocols)
	}
	if !tr.ForceAttemptHTTP2 {
		t.Error("https transport does not attempt HTTP/2")
	}
	if tr.HTTP2 == nil || tr.HTTP2.SendPingTimeout <= 0 || tr.HTTP2.PingTimeout <= 0 {
		t.Errorf("HTTP/2 health-check pings not configured: %+v", tr.HTTP2)
	}
}

// TestCreateNotReplayedOnDroppedH2CConnection: as over HTTP/1.1 (see
// TestCreateNotReplayedOnDroppedConnection), when the shared HTTP/2
// connection is lost after a create was sent, the create is not sent again
// by the transport: its outcome is unknown to the caller. Go's HTTP/2
// transport does not replay such a request even with GetBody set; the test
// keeps that true of whatever transport the client is built on.
func TestCreateNotReplayedOnDroppedH2CConnection(t *testing.T) {
	t.Parallel()
	var (
		posts atomic.Int64
		mu    sync.Mutex
		open  []net.Conn
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeJSON(w, http.StatusOK, map[string]any{"id": "acct_1"})
			return
		}
		posts.Add(1)
		// The instance is made, then the connection is lost.
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
	}))
	srv.Config.Protocols = cnsim.Protocols()
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/v1", APIKey: testKey, UnencryptedHTTP2: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	if _, err := c.Me(ctx); err != nil {
		t.Fatalf("Me: %v", err)
	}
	_, err = c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "n", Plan: "p", Region: "r", Image: "i"}, "req-1")
	if err == nil {
		t.Fatal("create on a lost connection succeeded")
	}
	if !apiclient.Retryable(err) {
		t.Errorf("error %v is not retryable (outcome unknown)", err)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("server received %d creates, want 1 (the transport re-sent it)", n)
	}
}

// TestUnencryptedHTTP2Connections: a burst of concurrent first calls shares
// one h2c connection instead of dialling one each, and a server that allows
// fewer concurrent streams than there are calls gets more connections rather
// than making calls wait.
func TestUnencryptedHTTP2Connections(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		maxStreams int
		minConns   int64
		maxConns   int64
	}{
		{"burst shares one connection", 250, 1, 1},
		{"more connections past the stream limit", 5, 2, 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(50 * time.Millisecond) // keep calls overlapping
				writeJSON(w, http.StatusOK, map[string]any{"id": "acct_1"})
			}))
			srv.Config.Protocols = cnsim.Protocols()
			srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: tt.maxStreams}
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL + "/v1", APIKey: testKey, MaxConnsPerHost: 256, UnencryptedHTTP2: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			const calls = 40
			var wg sync.WaitGroup
			start := make(chan struct{}) // all at once
			for range calls {
				wg.Go(func() {
					<-start
					if _, err := c.Me(context.Background()); err != nil {
						t.Errorf("Me: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := conns.Load(); n < tt.minConns || n > tt.maxConns {
				t.Errorf("%d concurrent calls opened %d connections, want %d to %d", calls, n, tt.minConns, tt.maxConns)
			}
		})
	}
}

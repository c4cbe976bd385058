package apiclient_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/cloudnexus/provisioner/apiclient"
)

// TestRetryAfterIsAFloor checks only lower bounds: the second attempt may not
// come before the Retry-After, however short the backoff.
func TestRetryAfterIsAFloor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter func() string
		minGap     time.Duration
	}{
		{name: "503 delta-seconds", status: 503, retryAfter: func() string { return "1" }, minGap: time.Second},
		{name: "429 delta-seconds", status: 429, retryAfter: func() string { return "1" }, minGap: time.Second},
		// An HTTP date has a resolution of one second: two seconds ahead is
		// at least one second ahead.
		{name: "503 http date", status: 503, retryAfter: func() string {
			return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
		}, minGap: 900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var seen []time.Time
			c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, time.Now())
				n := len(seen)
				mu.Unlock()
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter())
					writeAPIError(w, tt.status, "OVERLOADED", "try later")
					return
				}
				writeJSON(w, 200, testInstance("inst_1"))
			}, nil)
			if _, err := c.GetInstance(context.Background(), "inst_1"); err != nil {
				t.Fatalf("GetInstance: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 2 {
				t.Fatalf("server saw %d requests, want 2", len(seen))
			}
			if gap := seen[1].Sub(seen[0]); gap < tt.minGap {
				t.Errorf("second attempt %v after the first, want at least %v", gap, tt.minGap)
			}
		})
	}
}

func TestRetryGivesUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter string
		maxCalls   int64
	}{
		{name: "after RetryMaxElapsed", maxCalls: 100},
		{name: "when Retry-After ends past RetryMaxElapsed", retryAfter: "60", maxCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				writeAPIError(w, 503, "OVERLOADED", "try later")
			}, func(cfg *apiclient.Config) { cfg.RetryMaxElapsed = 150 * time.Millisecond })
			start := time.Now()
			_, err := c.GetInstance(context.Background(), "inst_1")
			var apiErr *apiclient.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
				t.Fatalf("GetInstance error = %v, want the last 503", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("gave up after %v, with RetryMaxElapsed 150ms", d)
			}
			if n := calls.Load(); n < 1 || n > tt.maxCalls {
				t.Errorf("server saw %d requests, want 1 to %d", n, tt.maxCalls)
			}
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		writeAPIError(w, 503, "OVERLOADED", "try later")
	}, func(cfg *apiclient.Config) { cfg.RetryMaxElapsed = time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.GetInstance(ctx, "inst_1")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GetInstance error = %v, want one matching context.Canceled", err)
	}
	if apiclient.Retryable(err) {
		t.Errorf("Retryable(%v) = true", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GetInstance returned %v after the cancel, want promptly", d)
	}
}

func TestRetryOp(t *testing.T) {
	t.Parallel()
	c, err := apiclient.New(apiclient.Config{APIKey: testKey, RetryInitial: time.Millisecond, RetryMaxInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	final := errors.New("final")
	conflict := &apiclient.Error{StatusCode: 409}
	tests := []struct {
		name      string
		errs      []error // returned by the successive calls of op; nil after
		wantCalls int
		wantErr   error
	}{
		{name: "success", wantCalls: 1},
		{name: "retryable then success", errs: []error{&apiclient.Error{StatusCode: 502}, &apiclient.Error{StatusCode: 429}}, wantCalls: 3},
		{name: "other error is final", errs: []error{final}, wantCalls: 1, wantErr: final},
		{name: "4xx is final", errs: []error{&apiclient.Error{StatusCode: 502}, conflict}, wantCalls: 2, wantErr: conflict},
		{name: "permanent is unwrapped", errs: []error{backoff.Permanent(conflict)}, wantCalls: 1, wantErr: conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := c.Retry(context.Background(), func(ctx context.Context) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("op called %d times, want %d", calls, tt.wantCalls)
			}
			if err != tt.wantErr {
				t.Errorf("Retry = %v, want %v (the error op returned)", err, tt.wantErr)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "500", err: &apiclient.Error{StatusCode: 500}, want: true},
		{name: "503", err: &apiclient.Error{StatusCode: 503}, want: true},
		{name: "429", err: &apiclient.Error{StatusCode: 429}, want: true},
		{name: "400", err: &apiclient.Error{StatusCode: 400}, want: false},
		{name: "401", err: &apiclient.Error{StatusCode: 401}, want: false},
		{name: "404", err: &apiclient.Error{StatusCode: 404}, want: false},
		{name: "wrapped 503", err: errors.Join(errors.New("x"), &apiclient.Error{StatusCode: 503}), want: true},
		{name: "canceled", err: context.Canceled, want: false},
		{name: "deadline", err: context.DeadlineExceeded, want: false},
		{name: "other", err: errors.New("boom"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := apiclient.Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestGateLimitsRequestsWhileOverloaded has 20 jobs polling one replica's
// client while the API answers 503 with Retry-After: 1 for 1.5s. Without the
// gate each job would retry on its own; with it the server should see about
// one request per second until the overload ends.
func TestGateLimitsRequestsWhileOverloaded(t *testing.T) {
	t.Parallel()
	const (
		callers = 20
		window  = 1500 * time.Millisecond
	)
	var (
		mu        sync.Mutex
		first     time.Time
		throttled int
		firstSeen = make(chan struct{})
	)
	c, calls := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		if first.IsZero() {
			first = now
			close(firstSeen)
		}
		overloaded := now.Sub(first) < window
		if overloaded {
			throttled++
		}
		mu.Unlock()
		if overloaded {
			w.Header().Set("Retry-After", "1")
			writeAPIError(w, 503, "OVERLOADED", "try later")
			return
		}
		writeJSON(w, 200, testInstance("inst_1"))
	}, nil)

	var wg sync.WaitGroup
	var failed atomic.Int64
	get := func() {
		if _, err := c.GetInstance(context.Background(), "inst_1"); err != nil {
			failed.Add(1)
			t.Errorf("GetInstance: %v", err)
		}
	}
	wg.Go(get)
	<-firstSeen
	// Let the first 503 reach the client and close the gate.
	time.Sleep(100 * time.Millisecond)
	for range callers - 1 {
		wg.Go(get)
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	// The first 503 and the probe about one second later; a third is slack.
	if throttled > 3 {
		t.Errorf("server saw %d requests during the 1.5s overload, want at most 3", throttled)
	}
	if n := calls.Load(); n < callers {
		t.Errorf("server saw %d requests in all, want at least %d", n, callers)
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d callers failed", failed.Load(), callers)
	}
}

// TestGateSlowsCreates checks that a 503 on one create holds back another
// job's create, although CreateInstance itself never retries.
func TestGateSlowsCreates(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []time.Time
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, time.Now())
		n := len(seen)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeAPIError(w, 503, "OVERLOADED", "try later")
			return
		}
		writeJSON(w, 201, testInstance("inst_2"))
	}, nil)
	ctx := context.Background()
	if _, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "a"}, "a"); err == nil {
		t.Fatal("first create: no error")
	}
	// Another endpoint is not held back.
	if _, err := c.GetInstance(ctx, "inst_2"); err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	if _, err := c.CreateInstance(ctx, apiclient.CreateInstanceRequest{Name: "b"}, "b"); err != nil {
		t.Fatalf("second create: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(seen))
	}
	if gap := seen[1].Sub(seen[0]); gap >= 900*time.Millisecond {
		t.Errorf("get waited %v behind the create gate", gap)
	}
	if gap := seen[2].Sub(seen[0]); gap < time.Second {
		t.Errorf("second create sent %v after the 503, want at least the 1s Retry-After", gap)
	}
}
